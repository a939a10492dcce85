//! Where the lake lives: a local directory by default, S3-compatible object
//! storage by configuration, and the names of the tables inside it.
//!
//! Layout under the root: `<layer>/<name>/` per table (`bronze/events`,
//! `silver/orders`, `gold/revenue_per_product_day`), each a Delta table.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use url::Url;

use crate::{Error, Result};

/// The medallion layer a table belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// Raw, append-only, as it arrived.
    Bronze,
    /// Typed, deduplicated, validated; quarantine beside it.
    Silver,
    /// Business aggregates.
    Gold,
}

impl Layer {
    pub const ALL: [Layer; 3] = [Layer::Bronze, Layer::Silver, Layer::Gold];

    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Bronze => "bronze",
            Layer::Silver => "silver",
            Layer::Gold => "gold",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Layer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bronze" => Ok(Layer::Bronze),
            "silver" => Ok(Layer::Silver),
            "gold" => Ok(Layer::Gold),
            _ => Err(Error::InvalidTableName(s.to_owned())),
        }
    }
}

/// A table's name: its layer and a plain name (`silver.orders`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId {
    pub layer: Layer,
    pub name: String,
}

impl TableId {
    /// A table id; the name must be letters, digits and `_`, starting with a letter.
    pub fn new(layer: Layer, name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        if !is_plain_name(&name) {
            return Err(Error::InvalidTableName(format!("{layer}.{name}")));
        }
        Ok(Self { layer, name })
    }

    /// The table's folder relative to the lake root (`silver/orders`).
    pub fn relative_path(&self) -> String {
        format!("{}/{}", self.layer, self.name)
    }

    /// The name SQL sees: `bronze_events`, `silver_orders`, and also the
    /// qualified `silver.orders` (registered under schema `silver`).
    pub fn sql_name(&self) -> String {
        format!("{}_{}", self.layer, self.name)
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.layer, self.name)
    }
}

impl FromStr for TableId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (layer, name) = s.split_once(['.', '/']).ok_or_else(|| Error::InvalidTableName(s.to_owned()))?;
        let layer = layer.parse().map_err(|_| Error::InvalidTableName(s.to_owned()))?;
        TableId::new(layer, name).map_err(|_| Error::InvalidTableName(s.to_owned()))
    }
}

/// Letters, digits and `_`, starting with a letter or `_`; at most 128 bytes.
pub fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

/// Turns any text into a plain table name (`customers-2023.json` -> `customers_2023_json`).
pub fn plain_name(text: &str) -> String {
    let mut out: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    out.truncate(128);
    out
}

/// The root of a lake and the options its object store needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeLocation {
    root: Url,
    options: HashMap<String, String>,
    /// The local directory, when the lake is on the local file system.
    local: Option<PathBuf>,
}

impl LakeLocation {
    /// A lake in a local directory (created if absent).
    pub fn local(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let abs = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
        let root = Url::from_directory_path(&abs).map_err(|()| Error::InvalidLocation {
            location: abs.display().to_string(),
            reason: "not an absolute path".into(),
        })?;
        Ok(Self { root, options: HashMap::new(), local: Some(abs) })
    }

    /// A lake at a URL: `s3://bucket/prefix` (options such as
    /// `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_REGION`, `AWS_ALLOW_HTTP`), `file:///abs/dir`, or a plain path.
    pub fn parse(location: &str, options: HashMap<String, String>) -> Result<Self> {
        if !location.contains("://") {
            let mut this = Self::local(location)?;
            this.options = options;
            return Ok(this);
        }
        let mut root = Url::parse(location).map_err(|source| Error::Url { location: location.to_owned(), source })?;
        match root.scheme() {
            "file" => {
                let path = root.to_file_path().map_err(|()| Error::InvalidLocation {
                    location: location.to_owned(),
                    reason: "a file URL needs an absolute path".into(),
                })?;
                let mut this = Self::local(path)?;
                this.options = options;
                Ok(this)
            }
            "s3" | "s3a" | "memory" => {
                crate::s3::register();
                if !root.path().ends_with('/') {
                    let path = format!("{}/", root.path());
                    root.set_path(&path);
                }
                Ok(Self { root, options, local: None })
            }
            other => Err(Error::InvalidLocation {
                location: location.to_owned(),
                reason: format!("scheme `{other}` is not supported; use a directory, file:// or s3://"),
            }),
        }
    }

    pub fn root(&self) -> &Url {
        &self.root
    }

    pub fn options(&self) -> &HashMap<String, String> {
        &self.options
    }

    /// The local directory of a lake on the file system.
    pub fn local_dir(&self) -> Option<&Path> {
        self.local.as_deref()
    }

    /// The URL of a table's folder.
    pub fn table_url(&self, id: &TableId) -> Result<Url> {
        self.root
            .join(&format!("{}/", id.relative_path()))
            .map_err(|source| Error::Url { location: self.root.to_string(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_ids_parse_and_refuse() {
        let id: TableId = "silver.orders".parse().expect("valid");
        assert_eq!(id.layer, Layer::Silver);
        assert_eq!(id.relative_path(), "silver/orders");
        assert_eq!(id.sql_name(), "silver_orders");
        assert_eq!("gold/revenue".parse::<TableId>().expect("slash form").to_string(), "gold.revenue");
        for bad in ["orders", "platinum.orders", "silver.", "silver.a-b", "silver.1x", "silver.a.b"] {
            assert!(matches!(bad.parse::<TableId>(), Err(Error::InvalidTableName(_))), "{bad}");
        }
        assert_eq!(plain_name("customers-2023.JSON"), "customers_2023_json");
        assert_eq!(plain_name("2023"), "_2023");
    }

    #[test]
    fn locations_parse() {
        let s3 = LakeLocation::parse("s3://bucket/lake", HashMap::new()).expect("s3");
        assert_eq!(s3.root().as_str(), "s3://bucket/lake/");
        let id = TableId::new(Layer::Bronze, "events").expect("id");
        assert_eq!(s3.table_url(&id).expect("url").as_str(), "s3://bucket/lake/bronze/events/");
        assert!(matches!(LakeLocation::parse("ftp://x/y", HashMap::new()), Err(Error::InvalidLocation { .. })));
    }
}
