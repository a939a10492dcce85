//! [`LakePort`] on the lake service: uploads, pipelines, queries and
//! object lists as HTTP calls (`POST /lake/landing/...`,
//! `POST /lake/pipelines`, `POST /lake/sql`, `GET /lake/tables...`).

use async_trait::async_trait;
use lake::TableId;
use lake::bronze::files::FileOutcome;
use lake::port::{LakePort, ObjectSummary, Pipeline, PipelineRun};
use serde_json::{Value, json};

use super::Endpoint;

/// The lake service's API.
#[derive(Debug, Clone)]
pub struct RemoteLake(pub Endpoint);

fn remote(what: &str, e: crate::Error) -> lake::Error {
    lake::Error::Remote { what: format!("the lake service, {what}"), source: Box::new(e) }
}

impl RemoteLake {
    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> lake::Result<Value> {
        self.0.call(method, path, body).await.map_err(|e| remote(&format!("{method} {path}"), e))
    }
}

#[async_trait]
impl LakePort for RemoteLake {
    async fn upload(&self, relative: &str, bytes: &[u8]) -> lake::Result<FileOutcome> {
        let path = format!("/lake/landing/{relative}");
        let reply = self
            .0
            .send_bytes("POST", &path, "application/octet-stream", bytes)
            .await
            .map_err(|e| remote(&format!("POST {path}"), e))?;
        let body = reply.json().map_err(|e| remote(&format!("POST {path}"), e.into()))?;
        // A refused file is an outcome, as the local lake reports it.
        let outcome = match reply.status {
            200 | 201 => body,
            422 if body.get("outcome").is_some() => body["outcome"].clone(),
            _ => return Err(remote(&format!("POST {path}"), self.0.refused("POST", &path, &reply))),
        };
        Ok(serde_json::from_value(outcome)?)
    }

    async fn query_json(&self, sql: &str) -> lake::Result<Vec<Value>> {
        let answer = self.call("POST", "/lake/sql", Some(&json!({ "sql": sql }))).await?;
        Ok(answer["rows"].as_array().cloned().unwrap_or_default())
    }

    async fn run_pipeline(&self, pipeline: &Pipeline) -> lake::Result<PipelineRun> {
        let answer = self.call("POST", "/lake/pipelines", Some(&serde_json::to_value(pipeline)?)).await?;
        Ok(serde_json::from_value(answer)?)
    }

    async fn table_version(&self, table: &TableId) -> lake::Result<Option<i64>> {
        let tables = self.call("GET", "/lake/tables", None).await?;
        let name = table.to_string();
        Ok(tables
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["table"].as_str() == Some(name.as_str()))
            .and_then(|t| t["version"].as_i64()))
    }

    async fn objects(&self, table: &TableId, partition: Option<(&str, &str)>) -> lake::Result<Vec<ObjectSummary>> {
        let mut path = format!("/lake/tables/{table}/objects");
        if let Some((k, v)) = partition {
            let pair: String = form_urlencoded::byte_serialize(format!("{k}={v}").as_bytes()).collect();
            path.push_str(&format!("?partition={pair}"));
        }
        Ok(serde_json::from_value(self.call("GET", &path, None).await?)?)
    }
}
