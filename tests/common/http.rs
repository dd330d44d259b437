//! HTTP exchanges with the local API as they happen on the wire, over its
//! Unix socket or its TCP listener, kept whole (status, every header, the
//! body's bytes) so that a checker can judge them afterwards.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where a request goes.
#[derive(Clone, Debug)]
pub enum Over {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

/// One request and its answer.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    pub request_content_type: Option<String>,
    pub status: u16,
    /// Names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Exchange {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} {} -> {}: not JSON ({e}): {:?}",
                self.method,
                self.path,
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The line tests/tools/check_local_api.py reads.
    pub fn line(&self) -> Value {
        json!({
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "headers": self.headers,
            "body": String::from_utf8_lossy(&self.body),
            "requestContentType": self.request_content_type,
        })
    }
}

/// Sends one request with `headers` (Host is added) and `body`, and reads
/// the whole answer.
pub async fn send(
    over: &Over,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Exchange {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("a well-formed request");
    let resp = match over {
        Over::Unix(p) => {
            let s = tokio::net::UnixStream::connect(p).await.unwrap();
            round_trip(s, req).await
        }
        Over::Tcp(a) => {
            let s = tokio::net::TcpStream::connect(a).await.unwrap();
            round_trip(s, req).await
        }
    };
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes().to_vec();
    Exchange {
        method: method.to_string(),
        path: path.to_string(),
        request_content_type: headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.to_string()),
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    }
}

async fn round_trip<S>(
    stream: S,
    req: hyper::Request<Full<Bytes>>,
) -> hyper::Response<hyper::body::Incoming>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.send_request(req).await.unwrap()
}

/// Writes `head` (request line and headers, without the blank line) and then
/// `body` as they are, over the Unix socket, and reads until the agent
/// closes: for requests a well-behaved client would not send (a body
/// shorter than its Content-Length).
pub async fn raw(socket: &std::path::Path, head: &str, body: &[u8], wait: Duration) -> Exchange {
    let mut s = tokio::net::UnixStream::connect(socket).await.unwrap();
    s.write_all(format!("{head}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(wait, s.read_to_end(&mut out))
        .await
        .expect("the agent answers and closes")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let end = text
        .find("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete answer head in {text:?}"));
    let mut lines = text[..end].split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut request_line = head.lines().next().unwrap_or("").split(' ');
    let content_type = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.trim().to_string());
    Exchange {
        method: request_line.next().unwrap_or("").to_string(),
        path: request_line.next().unwrap_or("").to_string(),
        request_content_type: content_type,
        status,
        headers,
        body: out[end + 4..].to_vec(),
    }
}
