//! libgit2's TCP stream, replaced by one that sets TCP_NODELAY.
//!
//! libgit2 1.9 (`streams/socket.c`) sets keepalive on its sockets but never TCP_NODELAY. A git
//! request goes out as several small writes before the client waits for the answer, so Nagle's
//! algorithm holds the later ones until the server's delayed ACK, about 40 ms a time: against
//! git daemon `ls-remote` took 48 ms instead of 4.5 ms, and every push 40 ms more, when
//! measured with TCP_NODELAY forced in from outside. In a race of N jobs every landing waits on
//! one such exchange. git2 has no option for it, and a git2 custom subtransport cannot carry
//! git:// (libgit2 asserts that upload-pack runs on the very stream of its ref advertisement),
//! so the stream itself is registered, through libgit2's `git_stream_register`. It carries
//! git://, http:// and, under OpenSSL, the TCP connection beneath https://, and keeps the rest
//! of libgit2's socket: the same keepalive, the `set_server_*timeout` options, and error
//! messages worded as libgit2's so that `classify` reads them the same.

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Connections our stream has opened, for the test that libgit2 uses it.
static OPENED: AtomicU64 = AtomicU64::new(0);

/// `git_stream` of `git2/sys/stream.h`, version 1.
#[repr(C)]
struct RawStream {
    version: c_int,
    /// The `encrypted` and `proxy_support` bits: neither, as libgit2's own socket.
    flags: c_uint,
    timeout: c_int,
    connect_timeout: c_int,
    connect: Option<unsafe extern "C" fn(*mut RawStream) -> c_int>,
    certificate: Option<unsafe extern "C" fn(*mut *mut c_void, *mut RawStream) -> c_int>,
    set_proxy: Option<unsafe extern "C" fn(*mut RawStream, *const c_void) -> c_int>,
    read: Option<unsafe extern "C" fn(*mut RawStream, *mut c_void, usize) -> isize>,
    write: Option<unsafe extern "C" fn(*mut RawStream, *const c_char, usize, c_int) -> isize>,
    close: Option<unsafe extern "C" fn(*mut RawStream) -> c_int>,
    free: Option<unsafe extern "C" fn(*mut RawStream)>,
}

/// `git_stream_registration`.
#[repr(C)]
struct Registration {
    version: c_int,
    init: Option<unsafe extern "C" fn(*mut *mut RawStream, *const c_char, *const c_char) -> c_int>,
    wrap: Option<unsafe extern "C" fn(*mut *mut RawStream, *mut RawStream, *const c_char) -> c_int>,
}

const GIT_STREAM_VERSION: c_int = 1;
const GIT_STREAM_STANDARD: c_int = 1;

unsafe extern "C" {
    // Not wrapped by git2 or libgit2-sys; part of libgit2's public `sys/stream.h`.
    fn git_stream_register(kind: c_int, registration: *mut Registration) -> c_int;
}

/// Our stream: libgit2 sees only `raw`, its first field.
#[repr(C)]
struct Stream {
    raw: RawStream,
    host: String,
    port: String,
    socket: Option<TcpStream>,
}

/// Makes every plain TCP connection libgit2 opens from now on ours. Call once, after libgit2's
/// init (any `git2::opts` call does it).
pub(crate) fn register() -> Result<(), git2::Error> {
    let mut registration = Registration {
        version: GIT_STREAM_VERSION,
        init: Some(init),
        wrap: None,
    };
    // SAFETY: libgit2 copies the registration; the functions live as long as the process.
    if unsafe { git_stream_register(GIT_STREAM_STANDARD, &mut registration) } < 0 {
        return Err(git2::Error::last_error(-1));
    }
    Ok(())
}

/// Connects to `host:port` as libgit2's socket does (each address in turn, giving up at the
/// first that times out), with TCP_NODELAY.
pub(crate) fn open(
    host: &str,
    port: &str,
    connect_timeout: Option<Duration>,
    timeout: Option<Duration>,
) -> Result<TcpStream, String> {
    let port_number = port
        .parse::<u16>()
        .map_err(|_| format!("failed to resolve address for {host}: invalid port '{port}'"))?;
    let addrs = (host, port_number)
        .to_socket_addrs()
        .map_err(|e| format!("failed to resolve address for {host}: {}", os_message(&e)))?;
    let mut last = None;
    for addr in addrs {
        let connected = match connect_timeout {
            Some(t) => TcpStream::connect_timeout(&addr, t),
            None => TcpStream::connect(addr),
        };
        match connected {
            Ok(socket) => {
                configure(&socket, timeout)
                    .map_err(|e| format!("failed to connect to {host}: {}", os_message(&e)))?;
                return Ok(socket);
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return Err(format!("failed to connect to {host}: Operation timed out"));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => format!("failed to connect to {host}: {}", os_message(&e)),
        None => format!("failed to resolve address for {host}: no address"),
    })
}

fn configure(socket: &TcpStream, timeout: Option<Duration>) -> io::Result<()> {
    socket.set_nodelay(true)?;
    // libgit2's keepalive: probes after 60 s idle, every 10 s, 3 of them.
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    socket2::SockRef::from(socket).set_tcp_keepalive(&keepalive)?;
    socket.set_read_timeout(timeout)?;
    socket.set_write_timeout(timeout)
}

/// An I/O error as libgit2 words it: strerror's text, without Rust's "(os error N)".
fn os_message(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// A timeout option in milliseconds (0: none) as a `Duration`.
fn millis(ms: c_int) -> Option<Duration> {
    u64::try_from(ms)
        .ok()
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis)
}

fn set_error(message: &str) {
    let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // SAFETY: libgit2 copies the string.
    unsafe {
        libgit2_sys::git_error_set_str(libgit2_sys::GIT_ERROR_NET as c_int, message.as_ptr());
    }
}

/// Which way bytes go, for libgit2's wording of a failure.
#[derive(Clone, Copy)]
enum Way {
    In,
    Out,
}

/// One read or write on the stream's socket, retried when interrupted. A failure is reported
/// as libgit2's socket reports it: `GIT_TIMEOUT` for a timeout, else -1.
fn transfer(
    s: &mut Stream,
    way: Way,
    mut op: impl FnMut(&mut TcpStream) -> io::Result<usize>,
) -> isize {
    let (dir, doing) = match way {
        Way::In => ("read from", "receiving data from"),
        Way::Out => ("write to", "sending data to"),
    };
    let Some(socket) = s.socket.as_mut() else {
        set_error(&format!("error {doing} socket: not connected"));
        return -1;
    };
    loop {
        match op(socket) {
            Ok(n) => return n as isize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                set_error(&format!("could not {dir} socket: timed out"));
                return libgit2_sys::GIT_TIMEOUT as isize;
            }
            Err(e) => {
                set_error(&format!("error {doing} socket: {}", os_message(&e)));
                return -1;
            }
        }
    }
}

/// # Safety
/// `raw` is a stream made by [`init`], not yet freed.
unsafe fn stream<'a>(raw: *mut RawStream) -> &'a mut Stream {
    // SAFETY: `raw` is the first field of a `Stream` (`repr(C)`), per the caller.
    unsafe { &mut *raw.cast::<Stream>() }
}

unsafe extern "C" fn init(
    out: *mut *mut RawStream,
    host: *const c_char,
    port: *const c_char,
) -> c_int {
    if out.is_null() || host.is_null() || port.is_null() {
        set_error("invalid argument to the socket stream");
        return -1;
    }
    // SAFETY: libgit2 passes NUL-terminated strings.
    let (host, port) = unsafe { (CStr::from_ptr(host), CStr::from_ptr(port)) };
    // SAFETY: reading two ints of libgit2's settings.
    let (connect_timeout, timeout) = unsafe {
        (
            git2::opts::get_server_connect_timeout_in_milliseconds().unwrap_or(0),
            git2::opts::get_server_timeout_in_milliseconds().unwrap_or(0),
        )
    };
    let stream = Box::new(Stream {
        raw: RawStream {
            version: GIT_STREAM_VERSION,
            flags: 0,
            timeout,
            connect_timeout,
            connect: Some(connect),
            certificate: None,
            set_proxy: None,
            read: Some(read),
            write: Some(write),
            close: Some(close),
            free: Some(free),
        },
        host: host.to_string_lossy().into_owned(),
        port: port.to_string_lossy().into_owned(),
        socket: None,
    });
    // SAFETY: `out` is valid for a write, per libgit2.
    unsafe { *out = Box::into_raw(stream).cast::<RawStream>() };
    0
}

unsafe extern "C" fn connect(raw: *mut RawStream) -> c_int {
    // SAFETY: libgit2 calls us with the stream `init` made.
    let s = unsafe { stream(raw) };
    match open(
        &s.host,
        &s.port,
        millis(s.raw.connect_timeout),
        millis(s.raw.timeout),
    ) {
        Ok(socket) => {
            OPENED.fetch_add(1, Ordering::Relaxed);
            s.socket = Some(socket);
            0
        }
        Err(message) => {
            set_error(&message);
            -1
        }
    }
}

unsafe extern "C" fn read(raw: *mut RawStream, data: *mut c_void, len: usize) -> isize {
    // SAFETY: libgit2 calls us with the stream `init` made, and `len` writable bytes.
    let (s, buf) = unsafe {
        (
            stream(raw),
            std::slice::from_raw_parts_mut(data.cast::<u8>(), len),
        )
    };
    transfer(s, Way::In, |socket| socket.read(buf))
}

unsafe extern "C" fn write(
    raw: *mut RawStream,
    data: *const c_char,
    len: usize,
    _flags: c_int,
) -> isize {
    // SAFETY: libgit2 calls us with the stream `init` made, and `len` readable bytes.
    let (s, buf) = unsafe {
        (
            stream(raw),
            std::slice::from_raw_parts(data.cast::<u8>(), len),
        )
    };
    transfer(s, Way::Out, |socket| socket.write(buf))
}

unsafe extern "C" fn close(raw: *mut RawStream) -> c_int {
    // SAFETY: libgit2 calls us with the stream `init` made.
    unsafe { stream(raw) }.socket = None;
    0
}

unsafe extern "C" fn free(raw: *mut RawStream) {
    // SAFETY: made by `Box::into_raw` in `init`; libgit2 frees each stream once.
    drop(unsafe { Box::from_raw(raw.cast::<Stream>()) });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn our_sockets_send_small_writes_at_once_and_keep_libgit2s_keepalive() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let socket = open("127.0.0.1", &port, Some(Duration::from_secs(5)), None).unwrap();
        assert!(socket.nodelay().unwrap());
        let sock = socket2::SockRef::from(&socket);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(60));
    }

    #[test]
    fn libgit2_connects_through_our_stream_once_started() {
        super::super::init_libgit2();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // A server that hangs up at once: the connect is all this test needs.
        let server = std::thread::spawn(move || drop(listener.accept()));
        let before = OPENED.load(Ordering::Relaxed);
        let mut remote =
            git2::Remote::create_detached(format!("git://127.0.0.1:{port}/repo.git")).unwrap();
        assert!(remote.connect(git2::Direction::Fetch).is_err());
        server.join().unwrap();
        assert!(OPENED.load(Ordering::Relaxed) > before);
    }

    #[test]
    fn the_io_timeout_option_bounds_each_read() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let timeout = Some(Duration::from_millis(1500));
        let socket = open("127.0.0.1", &port, None, timeout).unwrap();
        assert_eq!(socket.read_timeout().unwrap(), timeout);
        assert_eq!(socket.write_timeout().unwrap(), timeout);
    }

    #[test]
    fn a_read_that_times_out_is_libgit2s_timeout_and_says_so() {
        super::super::init_libgit2();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let timeout = Some(Duration::from_millis(50));
        let mut raw = std::ptr::null_mut();
        let (host, port_c) = (
            CString::new("127.0.0.1").unwrap(),
            CString::new(port).unwrap(),
        );
        // SAFETY: as libgit2 would call us; the stream is freed below.
        unsafe { assert_eq!(init(&mut raw, host.as_ptr(), port_c.as_ptr()), 0) };
        let s = unsafe { stream(raw) };
        s.socket = Some(open("127.0.0.1", &s.port, None, timeout).unwrap());
        // The server accepts (the backlog does) and never answers.
        let got = transfer(s, Way::In, |socket| socket.read(&mut [0u8; 16]));
        assert_eq!(got, libgit2_sys::GIT_TIMEOUT as isize);
        assert_eq!(
            git2::Error::last_error(-1).message(),
            "could not read from socket: timed out"
        );
        unsafe { free(raw) };
    }

    #[test]
    fn a_refused_connection_reads_as_libgit2_words_it() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port().to_string()
        };
        let err = open("127.0.0.1", &port, None, None).unwrap_err();
        assert_eq!(err, "failed to connect to 127.0.0.1: Connection refused");
    }

    #[test]
    fn a_port_that_is_not_a_number_is_an_address_error() {
        let err = open("127.0.0.1", "git", None, None).unwrap_err();
        assert!(
            err.starts_with("failed to resolve address for 127.0.0.1"),
            "{err}"
        );
    }
}
