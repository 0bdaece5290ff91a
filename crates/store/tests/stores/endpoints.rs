//! The endpoint policy on real connections: a host name that resolves to a refused address is
//! refused when it resolves (before any request, and again at connect time), and a store that
//! answers with a redirect is not followed. Each test listens where a request would land and
//! checks that nothing arrived.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use edgecap_pcap::Format;
use edgecap_store::{EndpointPolicy, Store, StoreOptions, UploadOptions, UploadSink, layout};

use super::s3::{ID, block_on, fast};

fn strict(allow: &[String]) -> StoreOptions {
    StoreOptions {
        endpoints: EndpointPolicy::from_flags(allow, "--allow-endpoint").unwrap(),
        ..fast()
    }
}

/// Connections `l` has waiting (it is non-blocking): what reached it.
fn connections(l: &TcpListener) -> usize {
    let mut n = 0;
    loop {
        match l.accept() {
            Ok(_) => n += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return n,
            Err(e) => panic!("accept: {e}"),
        }
    }
}

fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

#[test]
fn a_name_that_resolves_to_loopback_is_refused_and_never_dialled() {
    let (trap, port) = listener();
    let url = format!(
        "s3://pcaps/d?endpoint=https://localhost:{port}&access-key-id=a&secret-access-key=b"
    );
    // The URL names no address, so it passes until the name resolves.
    let store = Store::from_url(&url, &strict(&[]), "destination_conf").unwrap();
    // The server's check before it writes anything: bad input naming the field.
    let e = block_on(store.check_endpoint()).unwrap_err();
    assert!(e.is_bad_input(), "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with("destination_conf: endpoint host localhost resolves to ")
            && text.contains("a loopback address"),
        "{text}"
    );
    // An agent's upload dials without that check: the client refuses at connect time.
    let key = layout::node_file(ID, "edge0", Format::Pcapng).unwrap();
    let e = match UploadSink::start(&store, &key, &UploadOptions::default()) {
        Ok(_) => panic!("the upload started"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("endpoint host localhost resolves to") && e.contains("a loopback address"),
        "{e}"
    );
    assert_eq!(
        connections(&trap),
        0,
        "a connection reached the loopback port"
    );
    // The operator can allow the name.
    let allowed = Store::from_url(&url, &strict(&["localhost".into()]), "destination_conf");
    block_on(allowed.unwrap().check_endpoint()).unwrap();
}

/// A plain HTTP server on `l` that answers every request with a redirect to `to`, for a
/// bounded time; returns how many requests it answered.
fn redirector(l: TcpListener, to: String) -> (Arc<AtomicUsize>, std::thread::JoinHandle<()>) {
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    let t = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(15);
        while Instant::now() < end {
            let Ok((mut s, _)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            count.fetch_add(1, Ordering::SeqCst);
            let _ = write!(
                s,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {to}\r\nContent-Length: 0\r\n\
                 Connection: close\r\n\r\n"
            );
        }
    });
    (served, t)
}

#[test]
fn redirects_are_not_followed() {
    let (trap, trap_port) = listener();
    let (front, port) = listener();
    let (served, server) = redirector(front, format!("http://127.0.0.1:{trap_port}/x"));
    let url = format!(
        "s3://pcaps/d?endpoint=http://127.0.0.1:{port}&access-key-id=a&secret-access-key=b"
    );
    // The operator allows the store's port, not the trap's.
    let store = Store::from_url(
        &url,
        &strict(&[format!("127.0.0.1:{port}")]),
        "destination_conf",
    )
    .unwrap();
    let e = block_on(store.get_small("ownership-challenge-x.txt", 1024)).unwrap_err();
    assert!(e.to_string().contains("307"), "{e}");
    assert!(
        served.load(Ordering::SeqCst) >= 1,
        "the store was not asked"
    );
    assert_eq!(connections(&trap), 0, "the redirect was followed");
    drop(store);
    // The redirector ends by itself; don't wait for it.
    drop(server);
}
