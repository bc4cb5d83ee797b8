//! One HTTP/1.1 keep-alive connection per worker, on hyper's connection
//! API: `http`'s request path. No pool lookup, URL parsing or header map
//! per request, which is what a pooled client spends its time on when the
//! target answers in microseconds. Plain `http://` only: the comparison
//! endpoint and the local stack speak nothing else.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;

/// What every request of a run looks like.
pub struct Target {
    /// `host:port` to connect to.
    address: String,
    host: HeaderValue,
    method: Method,
    path: Uri,
    auth: Option<HeaderValue>,
    body: Option<(HeaderValue, Bytes)>,
}

impl Target {
    pub fn new(
        url: &str,
        method: Method,
        auth: Option<HeaderValue>,
        body: Option<(HeaderValue, Bytes)>,
    ) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "`{url}`: only http:// targets are supported (the local stack and the mock speak plain HTTP)"
            ));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("`{url}` has no host"))?;
        let address = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| format!("`{url}`: the host is not a valid header value"))?;
        let path = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e| format!("`{url}`: {e}"))?;
        Ok(Self {
            address,
            host,
            method,
            path,
            auth,
            body,
        })
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(
            self.body
                .as_ref()
                .map(|(_, b)| b.clone())
                .unwrap_or_default(),
        ));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.path.clone();
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        if let Some(auth) = &self.auth {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        if let Some((content_type, _)) = &self.body {
            headers.insert(CONTENT_TYPE, content_type.clone());
        }
        request
    }
}

/// Why a request got no status and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Connecting, sending or reading the head failed, or the timeout hit.
    Transport,
    /// The head arrived; the body did not.
    Body,
}

impl WireError {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transport => "transport",
            Self::Body => "body",
        }
    }
}

/// A worker's connection, opened on first use and again after a failure.
pub struct Connection {
    target: Arc<Target>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    pub fn new(target: Arc<Target>) -> Self {
        Self {
            target,
            sender: None,
        }
    }

    /// One request, its body read to the end, within `timeout`.
    pub async fn send(&mut self, timeout: Duration) -> Result<StatusCode, WireError> {
        let result = tokio::time::timeout(timeout, self.exchange())
            .await
            .unwrap_or(Err(WireError::Transport));
        if result.is_err() {
            // The connection's state is unknown: start over on a new one.
            self.sender = None;
        }
        result
    }

    async fn exchange(&mut self) -> Result<StatusCode, WireError> {
        let sender = match &mut self.sender {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.sender.insert(self.connect().await?),
        };
        sender.ready().await.map_err(|_| WireError::Transport)?;
        let response = sender
            .send_request(self.target.request())
            .await
            .map_err(|_| WireError::Transport)?;
        let status = response.status();
        response
            .into_body()
            .collect()
            .await
            .map_err(|_| WireError::Body)?;
        Ok(status)
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, WireError> {
        let stream = tokio::net::TcpStream::connect(&self.target.address)
            .await
            .map_err(|_| WireError::Transport)?;
        stream.set_nodelay(true).map_err(|_| WireError::Transport)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| WireError::Transport)?;
        // The connection's I/O runs beside the worker; it ends when the
        // sender is dropped or the peer closes.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls_are_targets() {
        let get = || Method::GET;
        let target = Target::new("http://127.0.0.1:8080/v1/x?y=1", get(), None, None).unwrap();
        assert_eq!(target.address, "127.0.0.1:8080");
        assert_eq!(target.path, "/v1/x?y=1");
        assert_eq!(target.host, "127.0.0.1:8080");
        assert_eq!(
            Target::new("http://localhost/", get(), None, None)
                .unwrap()
                .address,
            "localhost:80"
        );
        let https = Target::new("https://example.org/", get(), None, None).err();
        assert!(https.is_some_and(|e| e.contains("only http://")));
        assert!(Target::new("not a url", get(), None, None).is_err());
    }
}
