//! `warden health`: asks a running warden on this machine whether it is ready, for container
//! health checks in an image that has no shell and no curl (the static image is `FROM scratch`).
//! One HTTP/1.1 GET with a deadline; ready is a 200.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// GETs `path` from `host:port` within `timeout`; `Ok` on a 200, else what was wrong.
pub(crate) fn ready(host: IpAddr, port: u16, path: &str, timeout: Duration) -> Result<(), String> {
    // A server listening on every address answers on loopback.
    let host = if host.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host
    };
    let address = SocketAddr::new(host, port);
    let stream = TcpStream::connect_timeout(&address, timeout)
        .map_err(|err| format!("cannot connect to {address}: {err}"))?;
    let io = |err: std::io::Error| format!("{address}{path}: {err}");
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut writer = &stream;
    write!(
        writer,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .map_err(io)?;
    let mut status_line = String::new();
    BufReader::new(&stream)
        .read_line(&mut status_line)
        .map_err(io)?;
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(code) => Err(format!("{address}{path} answered {code}")),
        None => Err(format!("{address}{path} did not answer HTTP")),
    }
}
