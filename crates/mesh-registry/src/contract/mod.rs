//! Data contracts in the Open Data Contract Standard (ODCS) v3.1.0.
//!
//! - [`model`]: the typed document ([`Contract`] and one type per object of
//!   the standard); unknown keys are refused wherever the standard closes an
//!   object.
//! - YAML in and out: [`Contract::from_yaml`] reports the first problem as
//!   [`Error::Yaml`] with a 1-based line and column and the path of the key
//!   (`schema[0].properties[1]: unknown key `maxLenght` (did you mean
//!   `maxLength`?)`); [`Contract::to_yaml`] writes a document that reads back
//!   equal.
//! - [`Contract::lint`]: the rules the JSON Schema of the standard cannot
//!   express (or that the typed model leaves to a check, such as which
//!   server keys fit which server type), plus the registry's own rules.
//! - [`SchemaObject::to_json_schema`] and [`Contract::compile`]: a JSON
//!   Schema (draft 2020-12) per schema object, compiled once into a
//!   [`CompiledSchema`] whose [`is_valid`](CompiledSchema::is_valid) is the
//!   cheap per-record check.
//!
//! Accepted `apiVersion`s are v3.0.0 to v3.1.0, and v3.2.0 documents that
//! use only v3.1 keys (see [`ApiVersion`]).

mod data_quality;
mod json_schema;
mod lint;
pub mod model;
mod yaml;

#[cfg(test)]
pub(crate) mod tests;

pub use data_quality::*;
pub use json_schema::{CompiledSchema, jdk_pattern_to_regex};
pub use lint::Problem;
pub use model::*;

use crate::error::{Error, Result};

impl Contract {
    /// Reads a contract from YAML. `document` names the source (a file
    /// name) in errors.
    ///
    /// # Errors
    /// [`Error::Yaml`] when the text is not YAML or does not fit the model:
    /// an unknown key, a value of the wrong type, a missing required key, an
    /// `apiVersion` or `kind` the registry does not read. Semantic rules are
    /// checked by [`Contract::lint`], not here.
    pub fn from_yaml(document: &str, text: &str) -> Result<Contract> {
        yaml::from_yaml(document, text)
    }

    /// Writes the contract as YAML (keys in the standard's order, absent
    /// and empty-list keys left out).
    ///
    /// # Errors
    /// [`Error::InvalidContract`] if the YAML emitter refuses a value (not
    /// expected for values read by [`Contract::from_yaml`]).
    pub fn to_yaml(&self) -> Result<String> {
        yaml::to_yaml(self)
    }

    /// Reads a contract from a JSON value (a stored row, a JSON request).
    ///
    /// # Errors
    /// [`Error::InvalidContract`] naming what does not fit the model.
    pub fn from_json_value(document: &str, value: serde_json::Value) -> Result<Contract> {
        serde_json::from_value(value).map_err(|e| Error::InvalidContract {
            contract: document.to_string(),
            path: ".".to_string(),
            reason: e.to_string(),
        })
    }

    /// The contract as a JSON value (the same tree [`Contract::to_yaml`]
    /// writes).
    ///
    /// # Errors
    /// [`Error::InvalidContract`] if a value has no JSON form (not expected).
    pub fn to_json_value(&self) -> Result<serde_json::Value> {
        serde_json::to_value(self).map_err(|e| Error::InvalidContract {
            contract: self.id.clone(),
            path: ".".to_string(),
            reason: format!("cannot be written as JSON: {e}"),
        })
    }

    /// The contract's `version` as a semantic version.
    ///
    /// # Errors
    /// [`Error::InvalidVersion`] when it is not `MAJOR.MINOR.PATCH[-pre][+build]`.
    pub fn semver(&self) -> Result<semver::Version> {
        parse_version(&self.version)
    }

    /// The schema object called `name`.
    pub fn object(&self, name: &str) -> Option<&SchemaObject> {
        self.schema.iter().find(|o| o.name == name)
    }

    /// Every problem the lint finds, in document order (empty: the contract
    /// is fine). Each names its path, such as
    /// `schema[0].properties[2].logicalTypeOptions.minLength`.
    pub fn lint(&self) -> Vec<Problem> {
        lint::lint(self)
    }

    /// Lints and returns the first problem as an error.
    ///
    /// # Errors
    /// [`Error::InvalidVersion`] when `version` is not semver,
    /// [`Error::InvalidContract`] for any other lint problem.
    pub fn validate(&self) -> Result<()> {
        self.semver()?;
        match self.lint().into_iter().next() {
            None => Ok(()),
            Some(p) => Err(Error::InvalidContract { contract: self.id.clone(), path: p.path, reason: p.message }),
        }
    }

    /// Compiles every schema object into a validator for its records.
    ///
    /// # Errors
    /// [`Error::SchemaCompile`] naming the object whose JSON Schema the
    /// validator refuses (an invalid `pattern`, for example).
    pub fn compile(&self) -> Result<Vec<CompiledSchema>> {
        self.schema.iter().map(|object| CompiledSchema::compile(&self.id, object)).collect()
    }
}

/// Parses a semantic version (`1.2.3`, `2.0.0-rc.1`).
///
/// # Errors
/// [`Error::InvalidVersion`].
pub fn parse_version(value: &str) -> Result<semver::Version> {
    semver::Version::parse(value).map_err(|source| Error::InvalidVersion { value: value.to_string(), source })
}
