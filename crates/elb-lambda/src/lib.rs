//! Lambda functions as targets of application load balancers: the event a request becomes
//! and the response a function's answer becomes ([`event`], pure), and the Invoke API client
//! that carries them ([`invoke`]), which the data plane and the health checker share.

pub mod event;
pub mod invoke;

pub use event::{InvalidResponse, MAX_BODY, Request, Response};
pub use invoke::{Blame, Failure, Invoker};
