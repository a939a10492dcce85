//! `s3://` and `s3a://` tables on object_store's own S3 client.
//!
//! deltalake's `s3` feature would bring the AWS SDK (aws-config, STS, SSO,
//! DynamoDB) for credential chains and a DynamoDB lock this lake does not
//! use: commits rely on conditional puts (`If-None-Match: *`), which S3 and
//! the S3-compatible servers honour. object_store reads the same `AWS_*`
//! settings (keys, session token, region, endpoint, web identity, the ECS
//! and EC2 instance credentials) and is already in the tree.

use std::str::FromStr;
use std::sync::{Arc, Once};

use deltalake::logstore::{
    DeltaIOStorageBackend, LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef, StorageConfig,
    default_logstore, logstore_factories, object_store_factories,
};
use deltalake::{DeltaResult, DeltaTableError, Path};
use object_store::ObjectStoreScheme;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use url::Url;

/// Registers the S3 handlers with deltalake, once per process.
pub(crate) fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let store = Arc::new(S3Stores);
        let log = Arc::new(S3Logs);
        for scheme in ["s3://", "s3a://"] {
            // The two literals are valid URLs.
            let Ok(url) = Url::parse(scheme) else { continue };
            object_store_factories().insert(url.clone(), store.clone());
            logstore_factories().insert(url, log.clone());
        }
    });
}

struct S3Stores;

impl ObjectStoreFactory for S3Stores {
    fn parse_url_opts(&self, url: &Url, config: &StorageConfig) -> DeltaResult<(ObjectStoreRef, Path)> {
        // The environment first, then the table's own options over it.
        let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
        for (key, value) in &config.raw {
            if let Ok(key) = AmazonS3ConfigKey::from_str(&key.to_ascii_lowercase()) {
                builder = builder.with_config(key, value.clone());
            }
        }
        let (_, path) =
            ObjectStoreScheme::parse(url).map_err(|e| DeltaTableError::GenericError { source: Box::new(e) })?;
        let prefix = Path::parse(path.as_ref())?;
        let mut store: ObjectStoreRef = Arc::new(builder.build()?);
        if let Some(runtime) = &config.runtime {
            store = Arc::new(DeltaIOStorageBackend::new(store, runtime.clone()));
        }
        Ok((store, prefix))
    }
}

struct S3Logs;

impl LogStoreFactory for S3Logs {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(prefixed_store, root_store, location, options))
    }
}
