//! The DNS server: hickory-server's UDP and TCP handling around a handler that answers from the
//! current [`DnsTable`].

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Header, MessageType, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tracing::warn;

use crate::table::{DnsTable, Lookup};

/// AWS answers load balancer names with a TTL of 60 s.
const TTL: u32 = 60;

pub(crate) struct Handler {
    pub(crate) table: Arc<ArcSwap<DnsTable>>,
}

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap_or_else(|_| Name::root())
}

/// Whether an address answers a query of `qtype`: IPv4 ones A, IPv6 ones AAAA, both ANY.
fn answers_to(qtype: RecordType, ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => matches!(qtype, RecordType::A | RecordType::ANY),
        IpAddr::V6(_) => matches!(qtype, RecordType::AAAA | RecordType::ANY),
    }
}

fn soa(origin: &str) -> Record {
    let rdata = SOA::new(
        name(&format!("ns1.{origin}")),
        name(&format!("hostmaster.{origin}")),
        1,
        3600,
        600,
        86400,
        TTL,
    );
    Record::from_rdata(name(origin), TTL, RData::SOA(rdata))
}

fn ns(origin: &str) -> Record {
    Record::from_rdata(
        name(origin),
        TTL,
        RData::NS(NS(name(&format!("ns1.{origin}")))),
    )
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        let edns = request.edns.as_ref().map(|theirs| {
            let mut ours = Edns::new();
            ours.set_max_payload(theirs.max_payload().max(512));
            ours
        });
        let mut builder = MessageResponseBuilder::new(&request.queries, None);
        if let Some(edns) = &edns {
            builder.edns(edns);
        }
        let (mut answers, mut soa_section) = (Vec::new(), Vec::new());
        match (
            request.metadata.message_type,
            request.metadata.op_code,
            request.request_info(),
        ) {
            (MessageType::Query, OpCode::Query, Ok(info)) => {
                let qname = info.query.name().to_string().to_lowercase();
                let qtype = info.query.query_type();
                let table = self.table.load();
                match table.lookup(&qname) {
                    Lookup::Refused => {
                        metadata.authoritative = false;
                        metadata.response_code = ResponseCode::Refused;
                    }
                    Lookup::NxDomain { origin } => {
                        metadata.response_code = ResponseCode::NXDomain;
                        soa_section.push(soa(origin));
                    }
                    Lookup::Addresses { ips, .. } if ips.iter().any(|ip| answers_to(qtype, ip)) => {
                        let owner = name(&qname);
                        let record = |ip: &IpAddr| match ip {
                            IpAddr::V4(v4) => RData::A(A(*v4)),
                            IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
                        };
                        answers.extend(
                            ips.iter()
                                .filter(|ip| answers_to(qtype, ip))
                                .map(|ip| Record::from_rdata(owner.clone(), TTL, record(ip))),
                        );
                    }
                    Lookup::Apex { origin } if qtype == RecordType::SOA => {
                        answers.push(soa(origin))
                    }
                    Lookup::Apex { origin } if qtype == RecordType::NS => answers.push(ns(origin)),
                    // The name exists but has no record of this type: NOERROR with no answer.
                    Lookup::Addresses { origin, .. } | Lookup::Apex { origin } => {
                        soa_section.push(soa(origin))
                    }
                }
            }
            (MessageType::Query, OpCode::Query, Err(_)) => {
                metadata.response_code = ResponseCode::FormErr
            }
            _ => metadata.response_code = ResponseCode::NotImp,
        }
        let message = builder.build(metadata, answers.iter(), [], soa_section.iter(), []);
        match response.send_response(message).await {
            Ok(info) => info,
            Err(error) => {
                warn!(%error, "could not send a DNS response");
                ResponseInfo::from(Header {
                    metadata,
                    counts: Default::default(),
                })
            }
        }
    }
}
