//! Configuration of `platform serve`: flags, then environment variables,
//! then a YAML file (`--config` or `$PLATFORM_CONFIG`), then defaults.
//! Every setting resolves through [`ServeConfig::resolve`], one pure
//! function, so the precedence is tested without a process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The contexts a process can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceName {
    Orders,
    Accounts,
    Registry,
    Lake,
    Timeseries,
    /// Every context above.
    All,
}

impl ServiceName {
    pub const EACH: [ServiceName; 5] =
        [ServiceName::Orders, ServiceName::Accounts, ServiceName::Registry, ServiceName::Lake, ServiceName::Timeseries];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Orders => "orders",
            ServiceName::Accounts => "accounts",
            ServiceName::Registry => "registry",
            ServiceName::Lake => "lake",
            ServiceName::Timeseries => "timeseries",
            ServiceName::All => "all",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        <Self as clap::ValueEnum>::from_str(s.trim(), true).map_err(|_| {
            Error::Usage(format!("`{s}` is not a context; use orders, accounts, registry, lake, timeseries or all"))
        })
    }
}

/// What a bearer token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// GET requests.
    Read,
    /// Every other method.
    Write,
}

impl Scope {
    fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            other => Err(Error::Usage(format!("token scope `{other}`: use read or write"))),
        }
    }
}

/// How the bus authenticates, as librdkafka names it (`security.protocol`
/// and friends); empty fields are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSecurity {
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    pub security_protocol: Option<String>,
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<String>,
    /// PEM file of the CA that signed the brokers' certificates.
    pub ssl_ca_location: Option<String>,
}

impl KafkaSecurity {
    /// The librdkafka properties these settings stand for.
    pub fn properties(&self) -> Vec<(&'static str, String)> {
        [
            ("security.protocol", &self.security_protocol),
            ("sasl.mechanism", &self.sasl_mechanism),
            ("sasl.username", &self.sasl_username),
            ("sasl.password", &self.sasl_password),
            ("ssl.ca.location", &self.ssl_ca_location),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().filter(|v| !v.is_empty()).map(|v| (k, v.clone())))
        .collect()
    }
}

/// The YAML file: every key optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub contexts: Option<Vec<ServiceName>>,
    pub http: Option<String>,
    pub data: Option<PathBuf>,
    /// `host:port` of the brokers; absent = the in-process bus.
    pub kafka: Option<String>,
    #[serde(default)]
    pub kafka_security: KafkaSecurity,
    pub topic_prefix: Option<String>,
    pub database_url: Option<String>,
    pub lake: Option<String>,
    pub merchant_account: Option<String>,
    pub body_limit_bytes: Option<usize>,
    /// Seconds between the lake's refinements (0: only on demand).
    pub lake_refine_secs: Option<u64>,
    /// token -> scopes.
    pub tokens: Option<BTreeMap<String, Vec<Scope>>>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(crate::error::io(path))?;
        serde_norway::from_str(&text).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))
    }
}

/// What the command line gave (None = not given).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub contexts: Vec<ServiceName>,
    pub http: Option<String>,
    pub data: Option<PathBuf>,
    pub kafka: Option<String>,
    pub topic_prefix: Option<String>,
    pub lake: Option<String>,
}

/// Everything a serving process runs with, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    pub contexts: Vec<ServiceName>,
    pub http: SocketAddr,
    pub data: PathBuf,
    pub kafka: Option<String>,
    pub kafka_security: KafkaSecurity,
    pub topic_prefix: String,
    pub database_url: Option<String>,
    pub lake: Option<String>,
    pub merchant_account: String,
    pub body_limit_bytes: usize,
    /// Seconds between the lake's refinements (0: only on demand).
    pub lake_refine_secs: u64,
    pub tokens: BTreeMap<String, Vec<Scope>>,
}

/// The environment variables `serve` reads, for the docs and `--help`.
pub const ENV: &[(&str, &str)] = &[
    ("PLATFORM_CONFIG", "the YAML config file"),
    ("PLATFORM_CONTEXTS", "contexts to serve, comma-separated"),
    ("PLATFORM_HTTP", "listen address of the HTTP API"),
    ("PLATFORM_DATA", "storage root"),
    ("KAFKA_BOOTSTRAP", "brokers (host:port,...); unset = in-process bus"),
    ("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
    ("KAFKA_SASL_MECHANISM", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
    ("KAFKA_SASL_USERNAME", "SASL user"),
    ("KAFKA_SASL_PASSWORD", "SASL password"),
    ("KAFKA_SSL_CA_LOCATION", "PEM file of the brokers' CA"),
    ("PLATFORM_TOPIC_PREFIX", "in front of every topic and group name"),
    ("DATABASE_URL", "PostgreSQL for the event stores and the registry; unset = embedded files"),
    ("PLATFORM_LAKE", "lake location (a directory or s3://bucket/path)"),
    ("PLATFORM_MERCHANT_ACCOUNT", "the account order payments are credited to"),
    ("PLATFORM_BODY_LIMIT", "largest request body in bytes"),
    ("PLATFORM_LAKE_REFINE_SECS", "seconds between bronze -> silver -> gold runs (0: only POST /lake/refine)"),
    ("PLATFORM_TOKENS", "bearer tokens: TOKEN:read,write;TOKEN2:read"),
];

pub const DEFAULT_HTTP: &str = "127.0.0.1:8080";
pub const DEFAULT_BODY_LIMIT: usize = 4 * 1024 * 1024;
pub const DEFAULT_LAKE_REFINE_SECS: u64 = 30;

/// `TOKEN:read,write;TOKEN2:read`.
fn parse_tokens(s: &str) -> Result<BTreeMap<String, Vec<Scope>>> {
    let mut out = BTreeMap::new();
    for entry in s.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (token, scopes) = entry
            .rsplit_once(':')
            .ok_or_else(|| Error::Usage(format!("token entry `{entry}`: write TOKEN:read,write")))?;
        if token.is_empty() {
            return Err(Error::Usage("an empty bearer token".to_owned()));
        }
        let scopes = scopes.split(',').map(Scope::parse).collect::<Result<Vec<_>>>()?;
        out.insert(token.to_owned(), scopes);
    }
    Ok(out)
}

impl ServeConfig {
    /// Flags over `env` over `file` over defaults.
    pub fn resolve(flags: Flags, env: &dyn Fn(&str) -> Option<String>, file: FileConfig) -> Result<Self> {
        let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let mut contexts = if !flags.contexts.is_empty() {
            flags.contexts
        } else if let Some(list) = env("PLATFORM_CONTEXTS") {
            list.split(',').map(ServiceName::parse).collect::<Result<Vec<_>>>()?
        } else {
            file.contexts.unwrap_or_default()
        };
        if contexts.is_empty() {
            return Err(Error::Usage(
                "name the contexts to serve: orders, accounts, registry, lake, timeseries, or all".to_owned(),
            ));
        }
        if contexts.contains(&ServiceName::All) {
            contexts = ServiceName::EACH.to_vec();
        }
        contexts.sort();
        contexts.dedup();
        let http_text = flags.http.or_else(|| env("PLATFORM_HTTP")).or(file.http).unwrap_or(DEFAULT_HTTP.to_owned());
        let http = http_text
            .parse()
            .map_err(|e| Error::Usage(format!("listen address `{http_text}`: {e} (write HOST:PORT)")))?;
        let pick = |flag: Option<String>, var: &str, from_file: Option<String>| flag.or_else(|| env(var)).or(from_file);
        let sec = file.kafka_security;
        let kafka_security = KafkaSecurity {
            security_protocol: pick(None, "KAFKA_SECURITY_PROTOCOL", sec.security_protocol),
            sasl_mechanism: pick(None, "KAFKA_SASL_MECHANISM", sec.sasl_mechanism),
            sasl_username: pick(None, "KAFKA_SASL_USERNAME", sec.sasl_username),
            sasl_password: pick(None, "KAFKA_SASL_PASSWORD", sec.sasl_password),
            ssl_ca_location: pick(None, "KAFKA_SSL_CA_LOCATION", sec.ssl_ca_location),
        };
        // A number from the environment, else the file's, else the default.
        let number = |var: &str, unit: &str, from_file: Option<u64>, default: u64| -> Result<u64> {
            match env(var) {
                Some(v) => v.trim().parse().map_err(|_| Error::Usage(format!("{var} `{v}` is not a number of {unit}"))),
                None => Ok(from_file.unwrap_or(default)),
            }
        };
        let body_limit =
            number("PLATFORM_BODY_LIMIT", "bytes", file.body_limit_bytes.map(|b| b as u64), DEFAULT_BODY_LIMIT as u64)?;
        let body_limit_bytes = usize::try_from(body_limit).map_err(|_| {
            Error::Usage(format!("PLATFORM_BODY_LIMIT {body_limit} is larger than this machine addresses"))
        })?;
        let lake_refine_secs =
            number("PLATFORM_LAKE_REFINE_SECS", "seconds", file.lake_refine_secs, DEFAULT_LAKE_REFINE_SECS)?;
        let tokens = match env("PLATFORM_TOKENS") {
            Some(v) => parse_tokens(&v)?,
            None => file.tokens.unwrap_or_default(),
        };
        Ok(Self {
            contexts,
            http,
            data: flags
                .data
                .or_else(|| env("PLATFORM_DATA").map(PathBuf::from))
                .or(file.data)
                .unwrap_or("./data".into()),
            kafka: pick(flags.kafka, "KAFKA_BOOTSTRAP", file.kafka),
            kafka_security,
            topic_prefix: pick(flags.topic_prefix, "PLATFORM_TOPIC_PREFIX", file.topic_prefix).unwrap_or_default(),
            database_url: pick(None, "DATABASE_URL", file.database_url),
            lake: pick(flags.lake, "PLATFORM_LAKE", file.lake),
            merchant_account: pick(None, "PLATFORM_MERCHANT_ACCOUNT", file.merchant_account)
                .unwrap_or_else(|| "merchant".to_owned()),
            body_limit_bytes,
            lake_refine_secs,
            tokens,
        })
    }

    pub fn serves(&self, name: ServiceName) -> bool {
        self.contexts.contains(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        let file: FileConfig = serde_norway::from_str(
            "contexts: [lake]\nhttp: 127.0.0.1:9000\nkafka: file:9092\nbody_limit_bytes: 10\n\
             tokens: { t1: [read] }\nkafka_security: { security_protocol: SASL_SSL, sasl_username: alice }\n",
        )
        .expect("yaml");
        let env = env_of(&[("PLATFORM_HTTP", "127.0.0.1:9100"), ("KAFKA_SASL_USERNAME", "bob")]);
        let flags = Flags { kafka: Some("flag:9092".into()), ..Flags::default() };
        let c = ServeConfig::resolve(flags, &env, file).expect("resolve");
        assert_eq!(c.contexts, vec![ServiceName::Lake], "from the file");
        assert_eq!(c.http.to_string(), "127.0.0.1:9100", "env over file");
        assert_eq!(c.kafka.as_deref(), Some("flag:9092"), "flag over file");
        assert_eq!(c.kafka_security.security_protocol.as_deref(), Some("SASL_SSL"));
        assert_eq!(c.kafka_security.sasl_username.as_deref(), Some("bob"), "env over file");
        assert_eq!(c.body_limit_bytes, 10);
        assert_eq!(c.tokens.get("t1"), Some(&vec![Scope::Read]));
        assert_eq!(c.data, PathBuf::from("./data"), "default");
        assert_eq!(c.merchant_account, "merchant");
        assert_eq!(c.lake_refine_secs, DEFAULT_LAKE_REFINE_SECS);
        let env = env_of(&[("PLATFORM_CONTEXTS", "lake"), ("PLATFORM_LAKE_REFINE_SECS", "0")]);
        let file: FileConfig = serde_norway::from_str("lake_refine_secs: 5\n").expect("yaml");
        assert_eq!(ServeConfig::resolve(Flags::default(), &env, file).expect("resolve").lake_refine_secs, 0);
    }

    #[test]
    fn all_expands_and_bad_values_are_named() {
        let none = env_of(&[]);
        let c = ServeConfig::resolve(
            Flags { contexts: vec![ServiceName::All, ServiceName::Orders], ..Flags::default() },
            &none,
            FileConfig::default(),
        )
        .expect("resolve");
        assert_eq!(c.contexts, ServiceName::EACH.to_vec());
        let err = |env: &[(&str, &str)]| {
            ServeConfig::resolve(Flags::default(), &env_of(env), FileConfig::default())
                .expect_err("refused")
                .to_string()
        };
        assert!(err(&[]).contains("name the contexts"));
        assert!(err(&[("PLATFORM_CONTEXTS", "orders,shop")]).contains("`shop` is not a context"));
        assert!(err(&[("PLATFORM_CONTEXTS", "orders"), ("PLATFORM_HTTP", "nowhere")]).contains("`nowhere`"));
        assert!(err(&[("PLATFORM_CONTEXTS", "orders"), ("PLATFORM_TOKENS", "abc:admin")]).contains("`admin`"));
        assert!(err(&[("PLATFORM_CONTEXTS", "orders"), ("PLATFORM_BODY_LIMIT", "big")]).contains("`big`"));
        assert!(err(&[("PLATFORM_CONTEXTS", "lake"), ("PLATFORM_LAKE_REFINE_SECS", "-1")]).contains("`-1`"));
        let tokens = parse_tokens("w:read,write; r:read").expect("tokens");
        assert_eq!(tokens.get("w"), Some(&vec![Scope::Read, Scope::Write]));
        assert_eq!(tokens.get("r"), Some(&vec![Scope::Read]));
        assert!(serde_norway::from_str::<FileConfig>("htp: x\n").is_err(), "unknown keys are refused");
    }
}
