//! What must hold for any input to a parser: the fuzz targets (fuzz/) and the corpus
//! regression test (tests/corpus.rs) both run these.

use std::collections::BTreeSet;

use elb_api::query::Params;

/// The Query decoder: any body decodes or is refused as malformed (a 400), never panics. It
/// refuses exactly what is not UTF-8 or names a parameter twice; what it decodes answers each
/// name with the value the form gave it.
pub(crate) fn query(data: &[u8]) {
    let decoded = Params::decode(data);
    if std::str::from_utf8(data).is_err() {
        let refused = decoded.expect_err("a body that is not UTF-8 is refused");
        assert_eq!(refused.status, 400);
        return;
    }
    let pairs: Vec<(String, String)> = form_urlencoded::parse(data).into_owned().collect();
    let names: BTreeSet<&str> = pairs.iter().map(|(name, _)| name.as_str()).collect();
    let repeated = names.len() != pairs.len();
    match decoded {
        Err(refused) => {
            assert!(repeated, "refused with no name repeated: {refused:?}");
            assert_eq!(refused.status, 400);
        }
        Ok(params) => {
            assert!(!repeated, "a repeated name was taken");
            for (name, value) in &pairs {
                assert_eq!(params.optional(name), Some(value.as_str()));
            }
        }
    }
}
