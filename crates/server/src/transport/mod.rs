//! The socket layer, below every protocol: what a connection, a stream and a body may cost.
//!
//! - [`connections`]: the accept loop, each connection's watchdog (header, idle and first-byte
//!   timeouts), the connection cap and its 503, HTTP/2's streams and flow-control windows, and
//!   the bounded drain on shutdown, for the HTTP listener (HTTP/1 and h2c) and the gRPC one;
//! - [`budget`]: the server-wide memory budget for request bytes in flight;
//! - [`body`]: reading one body or gRPC message bounded in time, bytes and budget;
//! - [`deadline`]: a request's deadline, fixed at its arrival, bounding every wait it makes;
//! - [`canned`]: hyper's own answers to requests it cannot parse, given warden's JSON body.
//!
//! It knows nothing of models, protocols beyond framing, or the error table: the layers above
//! read bodies through [`body::read_bounded`] and map its refusals onto the table
//! (`outcome`), and start-up hands it the few answers it writes itself ([`canned::CannedAnswers`]).

pub mod body;
pub mod budget;
pub mod canned;
pub mod connections;
pub mod deadline;
