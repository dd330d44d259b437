//! A small client of the local API over its Unix socket, for the demo, the
//! command line and tests (real HTTP, through hyper).

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Client {
    pub fn new(socket: &Path) -> Client {
        Client {
            socket: socket.to_path_buf(),
        }
    }

    pub async fn get(&self, path: &str) -> Result<Answer, String> {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: &[u8]) -> Result<Answer, String> {
        self.call("POST", path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &[u8]) -> Result<Answer, String> {
        self.call("PUT", path, Some(body)).await
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Answer, String> {
        let (status, _, bytes) = self.exchange(method, path, body).await?;
        let body = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| format!("the agent answered something that is not JSON: {e}"))?
        };
        Ok(Answer { status, body })
    }

    /// A GET answered in text (`/metrics`): status, content type, body.
    pub async fn get_text(&self, path: &str) -> Result<(u16, String, String), String> {
        let (status, content_type, bytes) = self.exchange("GET", path, None).await?;
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|e| format!("the agent answered something that is not UTF-8: {e}"))?;
        Ok((status, content_type, text))
    }

    /// One request: status, content type, body.
    async fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<(u16, String, Bytes), String> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| format!("cannot reach the agent at {}: {e}", self.socket.display()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, content_type, bytes))
    }
}
