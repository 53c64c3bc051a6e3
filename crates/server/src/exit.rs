//! The process's exit codes (sysexits, as DESIGN.md lists them) and what an I/O failure means
//! for the user: every failure of every command maps onto these.

pub const USAGE: u8 = 64;
pub const DATA: u8 = 65;
pub const NO_INPUT: u8 = 66;
pub const UNAVAILABLE: u8 = 69;
pub const SOFTWARE: u8 = 70;
pub const CANNOT_CREATE: u8 = 73;
pub const IO: u8 = 74;
pub const NO_PERMISSION: u8 = 77;
pub const CONFIG: u8 = 78;

/// The exit code of a failed read or write.
pub fn io_exit(err: &std::io::Error) -> u8 {
    match err.kind() {
        std::io::ErrorKind::PermissionDenied => NO_PERMISSION,
        std::io::ErrorKind::NotFound => NO_INPUT,
        _ => IO,
    }
}

/// What to do about a failed read or write.
pub fn io_hint(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::PermissionDenied => {
            "the server's user cannot read it: `chmod a+r` the \
             file (and `a+x` its folders), or run as its owner"
                .to_owned()
        }
        _ => "check that the disk and the mount are healthy".to_owned(),
    }
}
