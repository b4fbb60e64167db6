//! Writing the Query protocol's XML responses.

use quick_xml::escape::escape;

/// An XML document written element by element. Text is escaped; element names are trusted
/// constants.
#[derive(Debug, Default)]
pub struct Xml(String);

impl Xml {
    pub fn new() -> Self {
        Self(String::with_capacity(1024))
    }

    pub fn open(&mut self, tag: &str) -> &mut Self {
        self.0.push('<');
        self.0.push_str(tag);
        self.0.push('>');
        self
    }

    /// `<tag xmlns="namespace">`, the root of a response.
    pub fn open_ns(&mut self, tag: &str, namespace: &str) -> &mut Self {
        self.0.push('<');
        self.0.push_str(tag);
        self.0.push_str(" xmlns=\"");
        self.0.push_str(namespace);
        self.0.push_str("\">");
        self
    }

    pub fn close(&mut self, tag: &str) -> &mut Self {
        self.0.push_str("</");
        self.0.push_str(tag);
        self.0.push('>');
        self
    }

    /// `<tag>text</tag>`.
    pub fn leaf(&mut self, tag: &str, text: impl AsRef<str>) -> &mut Self {
        self.open(tag);
        self.0.push_str(&escape(text.as_ref()));
        self.close(tag)
    }

    /// `<tag>text</tag>` when there is a text; nothing otherwise.
    pub fn leaf_opt(&mut self, tag: &str, text: Option<&str>) -> &mut Self {
        match text {
            Some(text) => self.leaf(tag, text),
            None => self,
        }
    }

    /// `<tag>` … `</tag>` around whatever `body` writes.
    pub fn node(&mut self, tag: &str, body: impl FnOnce(&mut Self)) -> &mut Self {
        self.open(tag);
        body(self);
        self.close(tag)
    }

    /// `<tag><member>…</member>…</tag>`, one member per item (the Query protocol's lists).
    pub fn members<T>(
        &mut self,
        tag: &str,
        items: impl IntoIterator<Item = T>,
        each: impl FnMut(&mut Self, T),
    ) -> &mut Self {
        self.list(tag, "member", items, each)
    }

    /// `<tag><item_tag>…</item_tag>…</tag>`.
    fn list<T>(
        &mut self,
        tag: &str,
        item_tag: &str,
        items: impl IntoIterator<Item = T>,
        mut each: impl FnMut(&mut Self, T),
    ) -> &mut Self {
        self.node(tag, |x| {
            for item in items {
                x.node(item_tag, |x| each(x, item));
            }
        })
    }

    /// `<tag><member>text</member>…</tag>`.
    pub fn text_members<S: AsRef<str>>(
        &mut self,
        tag: &str,
        items: impl IntoIterator<Item = S>,
    ) -> &mut Self {
        self.members(tag, items, |x, s| {
            x.0.push_str(&escape(s.as_ref()));
        })
    }

    /// EC2's list form: `<tag><item>…</item>…</tag>`.
    pub fn items<T>(
        &mut self,
        tag: &str,
        items: impl IntoIterator<Item = T>,
        each: impl FnMut(&mut Self, T),
    ) -> &mut Self {
        self.list(tag, "item", items, each)
    }

    /// `<tag><item>text</item>…</tag>`.
    pub fn text_items<S: AsRef<str>>(
        &mut self,
        tag: &str,
        items: impl IntoIterator<Item = S>,
    ) -> &mut Self {
        self.items(tag, items, |x, s| {
            x.0.push_str(&escape(s.as_ref()));
        })
    }

    /// Appends another document's content.
    pub fn append(&mut self, other: Self) {
        self.0.push_str(&other.0);
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_and_nests() {
        let mut x = Xml::new();
        x.node("A", |x| {
            x.leaf("B", "1 < 2 & \"q\"");
            x.text_members("L", ["a", "b"]);
        });
        assert_eq!(
            x.into_string(),
            "<A><B>1 &lt; 2 &amp; &quot;q&quot;</B><L><member>a</member><member>b</member></L></A>"
        );
    }
}
