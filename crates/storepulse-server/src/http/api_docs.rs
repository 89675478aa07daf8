//! `GET /openapi.json`, `GET /docs` and `GET /redoc`: the API's description, made from the
//! route table ([`super::ROUTE_TEMPLATES`]) so that it lists every route the server answers
//! and nothing else (a test holds the table to the router).
//!
//! Seed 4 (FastAPI) served these three paths, and its load test's admin user reads `/docs`
//! and `/redoc`. Here `/docs` and `/redoc` are one page, self-contained (no script or style
//! from elsewhere): every endpoint, its methods and what it is for, with the OpenAPI document
//! beside it for client generators. What each endpoint takes and answers is in the project's
//! docs (docs/analytics.md, docs/ingest.md); the document names no schemas.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::ROUTE_TEMPLATES;
use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(get_openapi))
        .route("/docs", get(get_reference))
        .route("/redoc", get(get_reference))
}

/// An OpenAPI 3.1 document of every route: its methods (HEAD, which every GET answers, left
/// out), what it is for, and its path parameters.
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for (template, methods, description) in ROUTE_TEMPLATES {
        let parameters: Vec<Value> = path_parameters(template)
            .map(|name| {
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
            })
            .collect();
        let mut operations = Map::new();
        for method in methods.split(',').filter(|method| *method != "HEAD") {
            let mut operation = json!({
                "summary": description,
                "responses": {"default": {"description": "See the project's docs"}},
            });
            if !parameters.is_empty() {
                operation["parameters"] = Value::Array(parameters.clone());
            }
            operations.insert(method.to_ascii_lowercase(), operation);
        }
        paths.insert(template.to_owned(), Value::Object(operations));
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Storepulse", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
    })
}

/// The `{name}` segments of a route template.
fn path_parameters(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{').and_then(|rest| rest.strip_suffix('}')))
}

async fn get_openapi() -> Response {
    axum::Json(openapi()).into_response()
}

/// The endpoints as an HTML page.
async fn get_reference() -> Response {
    let mut rows = String::new();
    for (template, methods, description) in ROUTE_TEMPLATES {
        let methods = methods.split(',').filter(|method| *method != "HEAD").collect::<Vec<_>>();
        rows.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>\n",
            methods.join(", "),
            escape(template),
            escape(description),
        ));
    }
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Storepulse API</title><style>body{{font-family:system-ui,sans-serif;\
         margin:2rem;max-width:60rem}}table{{border-collapse:collapse;width:100%}}\
         td,th{{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #ddd}}\
         td:first-child{{white-space:nowrap}}code{{font-size:.95em}}</style></head><body>\n<h1>Storepulse API {version}</h1>\n\
         <p>Every endpoint this server answers. The same list as an OpenAPI document: \
         <a href=\"/openapi.json\">/openapi.json</a>. What each takes and answers: the \
         project's <code>docs/analytics.md</code> and <code>docs/ingest.md</code>.</p>\n\
         <table><thead><tr><th>Methods</th><th>Path</th><th>For</th></tr></thead><tbody>\n\
         {rows}</tbody></table></body></html>\n",
        version = env!("CARGO_PKG_VERSION"),
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

/// `text` with HTML's special characters escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described_with_its_methods_and_path_parameters() {
        let document = openapi();
        for (template, methods, _) in ROUTE_TEMPLATES {
            for method in methods.split(',').filter(|method| *method != "HEAD") {
                let operation = &document["paths"][template][method.to_ascii_lowercase()];
                assert!(operation["summary"].is_string(), "{method} {template}");
            }
        }
        let activate = &document["paths"]["/api/v1/trending/versions/{version}/activate"]["post"];
        assert_eq!(activate["parameters"][0]["name"], "version");
        assert!(document["paths"]["/api/v1/query"]["head"].is_null(), "HEAD is GET's");
        assert_eq!(escape("a <b> & \"c\""), "a &lt;b&gt; &amp; &quot;c&quot;");
    }
}
