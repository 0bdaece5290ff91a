//! A hub of the test's own for one real agent: it speaks the agent protocol directly, so a
//! test can send what a faulty server could, or read exactly what the agent sends.

use std::path::Path;
use std::time::Duration;

use edgecap_lab::Lab;
use edgecap_model::{AgentMsg, ServerMsg};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::capture_common::BIN;
use crate::harness::Proc;

pub type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A runtime, and an agent for edge 0 of `lab` dialled into it.
pub struct FakeHub {
    pub rt: tokio::runtime::Runtime,
    pub ws: Ws,
    pub agent: Proc,
    /// Where the agent dials, kept for its next connection.
    listener: TcpListener,
}

impl FakeHub {
    /// Starts `edgecap agent --netns <edge 0>` (with `extra` arguments) against a listener of
    /// ours, accepts its connection and reads its hello (returned).
    pub fn start(lab: &Lab, scratch: &Path, extra: &[&str]) -> (FakeHub, AgentMsg) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = scratch.join("agent.log");
        let child = std::process::Command::new(BIN)
            .args([
                "agent",
                "--server",
                &url,
                "--token",
                "ect_unused",
                "--name",
                "edge0",
            ])
            .arg("--state-dir")
            .arg(scratch.join("agent-state"))
            .args(["--netns", lab.edge_ns(0)])
            .args(extra)
            .env("EDGECAP_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn edgecap agent");
        let agent = Proc {
            child: Some(child),
            log,
        };
        let ws = rt.block_on(accept(&listener));
        let mut hub = FakeHub {
            rt,
            ws,
            agent,
            listener,
        };
        let hello = hub.next();
        (hub, hello)
    }

    /// Closes the agent's connection (it dials again; nothing accepts it until
    /// [`FakeHub::accept_again`]).
    pub fn close(&mut self) {
        let ws = &mut self.ws;
        self.rt.block_on(async {
            let _ = ws.close(None).await;
        });
    }

    /// Accepts the agent's next connection and returns its hello.
    pub fn accept_again(&mut self) -> AgentMsg {
        self.ws = self.rt.block_on(accept(&self.listener));
        self.next()
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.agent.log).unwrap_or_default()
    }

    /// The agent's next message (20 s at most).
    pub fn next(&mut self) -> AgentMsg {
        let ws = &mut self.ws;
        self.rt.block_on(async {
            loop {
                let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
                    .await
                    .expect("a message from the agent within 20 s")
                    .expect("the agent closed the connection")
                    .unwrap();
                match msg {
                    Message::Text(t) => return AgentMsg::decode(&t).unwrap(),
                    Message::Close(_) => panic!("the agent closed the connection"),
                    _ => continue,
                }
            }
        })
    }

    pub fn send(&mut self, msg: ServerMsg) {
        let text = serde_json::to_string(&msg).unwrap();
        let ws = &mut self.ws;
        self.rt
            .block_on(async { ws.send(Message::text(text)).await })
            .unwrap();
    }
}

/// The next WebSocket connection on `listener` (20 s at most).
async fn accept(listener: &TcpListener) -> Ws {
    let accept = tokio::time::timeout(Duration::from_secs(20), listener.accept());
    let (stream, _) = accept.await.expect("the agent dials").unwrap();
    tokio_tungstenite::accept_async(stream).await.unwrap()
}
