//! The operators' web dashboard: fleet, alerts, transfers, sensing coverage
//! (the seven figures of a window, a chart per unit drawn as SVG by the page,
//! the least covered groups, the gaps behind them and their CSV exports), a
//! page per device and the custody trail of a record, at `/dashboard/` (`/`
//! redirects there).
//!
//! In: nothing but the request for the page. Out: one static page (HTML,
//! JavaScript and CSS compiled into the binary; no build step, nothing
//! fetched from elsewhere). The page holds no data: the operator signs in
//! with an API token and the browser reads everything from `/api/v1` with
//! it, so the API's roles and its audit log cover every read the dashboard
//! makes. A strict Content-Security-Policy lets the page run only its own
//! script and talk only to this hub.

use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// Where the dashboard is served.
pub const PATH: &str = "/dashboard/";

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");

/// Only this hub's own script, styles and API; no inline script, no framing,
/// no form posts (the sign-in form is handled by the script).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The dashboard's routes, to merge into the hub's router (no token needed:
/// the page itself holds no data).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(to_dashboard))
        .route("/dashboard", get(to_dashboard))
        .route(
            "/dashboard/",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/dashboard/index.html",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/dashboard/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/dashboard/style.css",
            get(|| async { asset(STYLE_CSS, "text/css; charset=utf-8") }),
        )
}

async fn to_dashboard() -> Redirect {
    Redirect::to(PATH)
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    async fn get(path: &str) -> Response {
        routes::<()>()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn header_of(r: &Response, name: header::HeaderName) -> &str {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn the_page_and_its_assets_are_served_with_their_types_and_a_strict_policy() {
        for (path, kind) in [
            ("/dashboard/", "text/html; charset=utf-8"),
            ("/dashboard/app.js", "text/javascript; charset=utf-8"),
            ("/dashboard/style.css", "text/css; charset=utf-8"),
        ] {
            let r = get(path).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(header_of(&r, header::CONTENT_TYPE), kind, "{path}");
            assert!(header_of(&r, header::CONTENT_SECURITY_POLICY).contains("script-src 'self'"));
            assert_eq!(header_of(&r, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        }
        assert_eq!(
            get("/dashboard/nothing").await.status(),
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn the_root_and_the_bare_path_redirect_to_the_dashboard() {
        for path in ["/", "/dashboard"] {
            let r = get(path).await;
            assert!(r.status().is_redirection(), "{path}: {}", r.status());
            assert_eq!(header_of(&r, header::LOCATION), PATH);
        }
    }

    /// The one address the script may name: the namespace of SVG elements.
    const SVG_NAMESPACE: &str = "http://www.w3.org/2000/svg";

    #[test]
    fn the_page_is_utf8_self_contained_and_never_parses_api_text_as_html() {
        assert!(INDEX_HTML.contains(r#"<meta charset="utf-8">"#));
        for (name, text) in [
            ("index.html", INDEX_HTML),
            ("app.js", APP_JS),
            ("style.css", STYLE_CSS),
        ] {
            // The SVG namespace names a kind of element; nothing is fetched from it.
            let text = text.replace(SVG_NAMESPACE, "");
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "{name} names an outside address"
            );
            assert!(
                !text.contains("//cdn") && !text.contains("@import"),
                "{name} loads from elsewhere"
            );
        }
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!APP_JS.contains(sink), "app.js uses {sink}");
        }
        assert!(
            !INDEX_HTML.contains("<script>"),
            "inline scripts are refused by the policy"
        );
    }

    #[test]
    fn every_view_in_the_nav_is_routed_by_the_script() {
        for view in ["fleet", "alerts", "transfers", "coverage"] {
            assert!(
                INDEX_HTML.contains(&format!(r##"href="#/{view}" data-view="{view}""##)),
                "no {view} in the nav"
            );
            assert!(
                APP_JS.contains(&format!(r#"parts[0] === "{view}""#))
                    || APP_JS.contains(&format!(r#"name: "{view}""#)),
                "app.js does not route #/{view}"
            );
        }
    }
}
