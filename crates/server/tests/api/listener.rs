//! The listener (`serve.rs`) over real sockets: a client that never finishes its headers is
//! cut off, connections beyond the cap wait until one closes, and a TLS handshake that never
//! starts is closed. SQLite only: the listener does not touch the database.

use std::time::Duration;

use edgecap_server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::common::{Backend, Harness, test_config};

/// Serves `config` on 127.0.0.1; the address and the stop switch.
async fn serve(config: Config) -> (Harness, String, oneshot::Sender<()>) {
    let h = Harness::with_config(Backend::Sqlite, config)
        .await
        .expect("SQLite harness");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(edgecap_server::run(listener, h.state.clone(), async move {
        let _ = rx.await;
    }));
    (h, addr, tx)
}

/// Reads until the peer closes (Ok(bytes read)) or `within` passes (Err).
async fn closed_within(s: &mut TcpStream, within: Duration) -> Result<Vec<u8>, ()> {
    let mut got = Vec::new();
    tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .map_err(|_| ())?;
    Ok(got)
}

const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let config = Config {
        header_read_timeout: Duration::from_millis(300),
        ..test_config()
    };
    let (_h, addr, _stop) = serve(config).await;
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_secs(10))
            .await
            .is_ok(),
        "a half-sent request kept its connection"
    );
    // Others are served meanwhile and after.
    let mut ok = TcpStream::connect(&addr).await.unwrap();
    ok.write_all(HEALTH).await.unwrap();
    let answer = closed_within(&mut ok, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let config = Config {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(60),
        ..test_config()
    };
    let (_h, addr, _stop) = serve(config).await;
    let mut a = TcpStream::connect(&addr).await.unwrap();
    let _b = TcpStream::connect(&addr).await.unwrap();
    // The kernel completes the third connection (backlog), but the server does not take it.
    let mut c = TcpStream::connect(&addr).await.unwrap();
    c.write_all(HEALTH).await.unwrap();
    assert!(
        closed_within(&mut c, Duration::from_millis(500))
            .await
            .is_err(),
        "the third connection was served beyond the cap of 2"
    );
    // One of the first two goes: the third is served.
    a.shutdown().await.unwrap();
    drop(a);
    let answer = closed_within(&mut c, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_never_starts_is_closed() {
    let dir = edgecap_testkit::servers::TempDir::new("listener-tls");
    let pki = edgecap_testkit::TestPki::write(&dir.0);
    let config = Config {
        tls: Some(edgecap_tls::server_config(&pki.cert, &pki.key).unwrap()),
        handshake_timeout: Duration::from_millis(300),
        ..test_config()
    };
    let (_h, addr, _stop) = serve(config).await;
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    assert!(
        closed_within(&mut idle, Duration::from_secs(10))
            .await
            .is_ok(),
        "a connection that never said hello kept its handshake slot"
    );
    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(&addr).await.unwrap();
    plain.write_all(HEALTH).await.unwrap();
    let answer = closed_within(&mut plain, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(!answer.starts_with(b"HTTP/1.1 200"));
}

/// The agent socket asks the plain-link rule about the peer before anything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_agent_links_from_remote_peers_are_refused() {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let h = Harness::new(Backend::Sqlite).await.expect("SQLite harness");
    let ask = |peer: &str, tls: bool, insecure: bool| {
        let mut state = h.state.clone();
        if insecure {
            let mut config = (*state.config).clone();
            config.insecure_plaintext = true;
            state.config = std::sync::Arc::new(config);
        }
        let peer: std::net::SocketAddr = peer.parse().unwrap();
        let mut req = axum::http::Request::get("/agent/v1/connect")
            .header(
                "authorization",
                format!(
                    "Bearer {}",
                    edgecap_server::sim::credential_for(&h.agent_token, "edge-1")
                ),
            )
            .header(edgecap_model::NODE_HEADER, "edge-1")
            .header(edgecap_model::ENROLMENT_HEADER, h.agent_token.as_str())
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(edgecap_server::serve::Link { peer, tls });
        async move {
            let resp = edgecap_server::app(state).oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let (status, body) = ask("198.18.0.9:5000", false, false).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("non-loopback peer 198.18.0.9") && body.contains("--insecure-plaintext"),
        "{body}"
    );
    // The same peer over TLS, or with --insecure-plaintext, or from loopback, gets past the
    // rule (and then fails for want of a WebSocket upgrade, naming it).
    for (peer, tls, insecure) in [
        ("198.18.0.9:5000", true, false),
        ("198.18.0.9:5000", false, true),
        ("[::1]:5000", false, false),
    ] {
        let (status, body) = ask(peer, tls, insecure).await;
        assert_ne!(status, 403, "{peer} tls={tls} insecure={insecure}: {body}");
        assert!(body.contains("WebSocket"), "{body}");
    }
}
