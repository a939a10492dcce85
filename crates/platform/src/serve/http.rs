//! What every service's HTTP API shares: JSON errors that name the
//! problem, a JSON body reader that names the field, bearer tokens with
//! read and write scopes, and request metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequest, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::config::Scope;
use super::metrics::Metrics;
use crate::error::Error;

/// An answer that is not a success: status, a stable code, a message for
/// people, and the field at fault when one is.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub hint: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None, hint: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// A field missing or wrong.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self { field: Some(field.to_owned()), ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message) }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "code": self.code, "message": self.message });
        if let Some(f) = &self.field {
            body["field"] = json!(f);
        }
        if let Some(h) = self.hint {
            body["hint"] = json!(h);
        }
        let mut response = (self.status, axum::Json(json!({ "error": body }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Which status a context's error answers with: the caller's mistakes and
/// refusals by the domain are 4xx, storage and bus failures 5xx.
impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        use StatusCode as S;
        let hint = e.hint();
        let (status, code) = match &e {
            Error::Usage(_) => (S::BAD_REQUEST, "bad_request"),
            Error::OrderNotFound(_) | Error::UnknownProjection { .. } => (S::NOT_FOUND, "not_found"),
            Error::Accounts(accounts::Error::NotFound(_))
            | Error::Accounts(accounts::Error::Account(accounts::AccountError::NotOpened)) => {
                (S::NOT_FOUND, "not_found")
            }
            Error::Accounts(accounts::Error::InvalidPage { .. }) => (S::UNPROCESSABLE_ENTITY, "invalid_value"),
            Error::Accounts(accounts::Error::Account(a)) => match a {
                accounts::AccountError::EmptyHolder
                | accounts::AccountError::InvalidAccountId(_)
                | accounts::AccountError::NegativeInitialBalance(_)
                | accounts::AccountError::CurrencyMismatch { .. }
                | accounts::AccountError::SelfTransfer
                | accounts::AccountError::EmptyTransferId
                | accounts::AccountError::EmptyOrderId
                | accounts::AccountError::Money(_) => (S::UNPROCESSABLE_ENTITY, "invalid_value"),
                _ => (S::CONFLICT, "refused"),
            },
            Error::Order(o) | Error::Orders(orders::Error::Order(o)) => order_status(o),
            Error::Orders(orders::Error::Customer(_) | orders::Error::InvalidDateRange { .. }) => {
                (S::UNPROCESSABLE_ENTITY, "invalid_value")
            }
            Error::Domain(d) | Error::Accounts(accounts::Error::Domain(d)) | Error::Orders(orders::Error::Codec(d)) => {
                domain_status(d)
            }
            Error::Store(s) | Error::Accounts(accounts::Error::Store(s)) | Error::Orders(orders::Error::Store(s)) => {
                store_status(s)
            }
            Error::Registry(r) => registry_status(r),
            Error::Lake(l) => lake_status(l),
            Error::Timeseries(t) => timeseries_status(t),
            Error::Kafka(_) => (S::SERVICE_UNAVAILABLE, "bus_unavailable"),
            _ => (S::INTERNAL_SERVER_ERROR, "internal"),
        };
        // A value the domain refused names its field, as a body that does not parse does.
        let field = match &e {
            Error::Orders(orders::Error::Customer(orders::customers::CustomerError::Invalid { field, .. })) => {
                Some((*field).to_owned())
            }
            _ => None,
        };
        Self { status, code, message: e.to_string(), field, hint }
    }
}

fn order_status(e: &orders::OrderError) -> (StatusCode, &'static str) {
    use orders::OrderError as O;
    match e {
        O::NotCreated => (StatusCode::NOT_FOUND, "not_found"),
        O::AlreadyCreated
        | O::InvalidState { .. }
        | O::EmptyOrder
        | O::PaymentBeforeConfirmation
        | O::PaymentAlreadyCaptured { .. }
        | O::NotPaid { .. } => (StatusCode::CONFLICT, "refused"),
        _ => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_value"),
    }
}

fn domain_status(e: &domain_core::Error) -> (StatusCode, &'static str) {
    use domain_core::Error as D;
    match e {
        D::InvalidCurrency(_) | D::CurrencyMismatch { .. } | D::InvalidAmount { .. } | D::AmountOverflow => {
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_value")
        }
        D::Rejected(_) => (StatusCode::CONFLICT, "refused"),
        D::Bus(_) | D::Backpressure(_) | D::Closed | D::Transient(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

fn store_status(e: &event_store::Error) -> (StatusCode, &'static str) {
    use event_store::Error as E;
    match e {
        E::Conflict { .. } | E::TooManyConflicts { .. } | E::IdempotencyConflict { .. } => {
            (StatusCode::CONFLICT, "conflict")
        }
        E::InvalidStream { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_value"),
        E::StreamDeleted(_) => (StatusCode::GONE, "deleted"),
        E::ProjectionParked { .. } => (StatusCode::CONFLICT, "parked"),
        E::NotParked { .. } => (StatusCode::CONFLICT, "not_parked"),
        E::RebuildRunning { .. } => (StatusCode::CONFLICT, "rebuild_running"),
        E::RebuildUnsupported { .. } => (StatusCode::CONFLICT, "refused"),
        E::RebuildFailed { source, .. } => match source.as_ref() {
            E::ProjectionParked { .. } => (StatusCode::CONFLICT, "parked"),
            inner => store_status(inner),
        },
        E::Domain(d) => domain_status(d),
        E::Shared(inner) => store_status(inner),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

fn registry_status(e: &mesh_registry::Error) -> (StatusCode, &'static str) {
    use mesh_registry::Error as R;
    match e {
        R::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
        R::Yaml { .. }
        | R::InvalidContract { .. }
        | R::InvalidVersion { .. }
        | R::SchemaCompile { .. }
        | R::InvalidProduct { .. }
        | R::InvalidQuery(_)
        | R::SearchQuery { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_document"),
        R::BreakingChange { .. } | R::Duplicate { .. } | R::Lifecycle { .. } => (StatusCode::CONFLICT, "refused"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

fn lake_status(e: &lake::Error) -> (StatusCode, &'static str) {
    use lake::Error as L;
    match e {
        L::UnknownTable { .. } => (StatusCode::NOT_FOUND, "not_found"),
        L::Sql(_) | L::InvalidTableName(_) => (StatusCode::BAD_REQUEST, "invalid_sql"),
        L::NotAQuery(_) => (StatusCode::BAD_REQUEST, "not_a_query"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

fn timeseries_status(e: &timeseries::Error) -> (StatusCode, &'static str) {
    use timeseries::Error as T;
    match e {
        T::UnknownSeries(_) => (StatusCode::NOT_FOUND, "not_found"),
        T::InvalidSchema { .. }
        | T::SchemaConflict(_)
        | T::UnknownTagKey { .. }
        | T::WrongUnit { .. }
        | T::NaN { .. }
        | T::TooOld { .. }
        | T::InvalidMatcher(_)
        | T::InvalidRegex { .. }
        | T::InvertedRange { .. }
        | T::TooManyBuckets { .. }
        | T::Agg(_)
        | T::LineProtocol(_)
        | T::Batch(_)
        | T::StringField { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

/// Results of a handler.
pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// A JSON request body; a refusal names the field and what was wrong
/// (`{"error": {"code": "invalid_field", "field": "quantity", ...}}`).
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        let bytes = if bytes.iter().all(u8::is_ascii_whitespace) { Bytes::from_static(b"{}") } else { bytes };
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de).map(Body).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("the body is not JSON: {inner}"))
            } else if path == "." {
                ApiError { field: field_of(&inner.to_string()), ..ApiError::field("", inner.to_string()) }
            } else {
                ApiError::field(&path, format!("`{path}`: {inner}"))
            }
        })
    }
}

/// Query-string parameters; a refusal names the parameter.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Params).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let named = (path != ".").then_some(path);
            match named.or_else(|| field_of(&inner)).or_else(|| unknown_field_of(&inner)) {
                Some(f) => ApiError::field(&f, format!("query parameter: {inner}")),
                None => ApiError::bad_request(format!("query string: {inner}")),
            }
        })
    }
}

/// `unknown field `x`, expected ...` names `x`.
fn unknown_field_of(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_owned())
}

/// `missing field `x`` at the top level names `x`.
fn field_of(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

/// The raw body, within the size limit.
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> ApiResult<Bytes> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", e.body_text())
        } else {
            ApiError::bad_request(e.body_text())
        }
    })
}

/// Who may call: no tokens configured = everyone.
#[derive(Debug, Default)]
pub struct Tokens {
    tokens: std::collections::BTreeMap<String, Vec<Scope>>,
}

impl Tokens {
    pub fn new(tokens: std::collections::BTreeMap<String, Vec<Scope>>) -> Self {
        Self { tokens }
    }

    /// Whether `authorization` may make a request needing `scope`.
    fn check(&self, authorization: Option<&str>, scope: Scope) -> ApiResult<()> {
        if self.tokens.is_empty() {
            return Ok(());
        }
        let token =
            authorization.and_then(|h| h.strip_prefix("Bearer ")).map(str::trim).filter(|t| !t.is_empty()).ok_or_else(
                || ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "send `Authorization: Bearer <token>`"),
            )?;
        let scopes = self
            .tokens
            .get(token)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "the bearer token is not known"))?;
        // A write token may read too.
        if scopes.contains(&scope) || (scope == Scope::Read && scopes.contains(&Scope::Write)) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("the token lacks the `{}` scope", if scope == Scope::Read { "read" } else { "write" }),
            ))
        }
    }
}

/// Which scope a request needs: reads are GET and HEAD; the lake's SQL is
/// a read even though it is a POST.
fn scope_of(method: &Method, route: &str) -> Scope {
    if method == Method::GET || method == Method::HEAD || route == "/lake/sql" { Scope::Read } else { Scope::Write }
}

/// Probes and the scrape are open, so an orchestrator and Prometheus need
/// no token.
fn is_open(route: &str) -> bool {
    matches!(route, "/healthz" | "/readyz" | "/metrics" | "/openapi.json")
}

/// The route template a request matched, or its path.
fn route_of(req: &Request) -> String {
    req.extensions().get::<MatchedPath>().map_or_else(|| req.uri().path().to_owned(), |m| m.as_str().to_owned())
}

/// The context a route belongs to, for the metrics' labels.
pub fn context_of(route: &str) -> &'static str {
    match route.trim_start_matches('/').split('/').next().unwrap_or("") {
        "orders" | "customers" => "orders",
        "accounts" => "accounts",
        "registry" => "registry",
        "lake" => "lake",
        "write" | "api" | "ts" => "timeseries",
        _ => "platform",
    }
}

/// Checks the bearer token of matched routes.
pub async fn authorize(State(tokens): State<Arc<Tokens>>, req: Request, next: Next) -> Response {
    let route = route_of(&req);
    if !is_open(&route) {
        let auth = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if let Err(e) = tokens.check(auth, scope_of(req.method(), &route)) {
            return e.into_response();
        }
    }
    next.run(req).await
}

/// Counts and times every matched request.
pub async fn measure(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = route_of(&req);
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    metrics.observe(context_of(&route), &route, &method, response.status().as_u16(), started.elapsed());
    response
}

/// Unknown paths answer JSON too.
pub async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!("no route {} {}; GET /openapi.json lists them", req.method(), req.uri().path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_check_presence_then_identity_then_scope() {
        let none = Tokens::default();
        assert!(none.check(None, Scope::Write).is_ok(), "no tokens configured: open");
        let t = Tokens::new([("r".to_owned(), vec![Scope::Read]), ("w".to_owned(), vec![Scope::Write])].into());
        assert_eq!(t.check(None, Scope::Read).expect_err("missing").status, StatusCode::UNAUTHORIZED);
        assert_eq!(t.check(Some("Basic abc"), Scope::Read).expect_err("scheme").status, StatusCode::UNAUTHORIZED);
        assert_eq!(t.check(Some("Bearer x"), Scope::Read).expect_err("unknown").status, StatusCode::UNAUTHORIZED);
        assert!(t.check(Some("Bearer r"), Scope::Read).is_ok());
        assert_eq!(t.check(Some("Bearer r"), Scope::Write).expect_err("scope").status, StatusCode::FORBIDDEN);
        assert!(t.check(Some("Bearer w"), Scope::Read).is_ok(), "write implies read");
        assert!(t.check(Some("Bearer w"), Scope::Write).is_ok());
    }

    #[test]
    fn routes_map_to_contexts_and_scopes() {
        assert_eq!(context_of("/orders/{id}/items"), "orders");
        assert_eq!(context_of("/write"), "timeseries");
        assert_eq!(context_of("/metrics"), "platform");
        assert_eq!(scope_of(&Method::POST, "/lake/sql"), Scope::Read);
        assert_eq!(scope_of(&Method::POST, "/orders"), Scope::Write);
        assert_eq!(field_of("missing field `customer_id`").as_deref(), Some("customer_id"));
    }

    #[test]
    fn domain_refusals_are_4xx_and_faults_5xx() {
        let status = |e: Error| ApiError::from(e).status;
        assert_eq!(status(Error::OrderNotFound("o".into())), StatusCode::NOT_FOUND);
        assert_eq!(status(Error::Order(orders::OrderError::EmptyOrder)), StatusCode::CONFLICT);
        assert_eq!(status(Error::Order(orders::OrderError::ZeroQuantity)), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            status(Error::Accounts(accounts::Error::Account(accounts::AccountError::InsufficientFunds {
                balance: 1.into(),
                requested: 2.into()
            }))),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status(Error::Domain(domain_core::Error::InvalidCurrency("XX".into()))),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(status(Error::Timeseries(timeseries::Error::UnknownSeries("s".into()))), StatusCode::NOT_FOUND);
        assert_eq!(status(Error::Usage("x".into())), StatusCode::BAD_REQUEST);
        assert_eq!(
            status(Error::Store(event_store::Error::Replay {
                path: "p".into(),
                offset: 0,
                source: Box::new(event_store::Error::StreamDeleted("s".into()))
            })),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
