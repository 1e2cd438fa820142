//! The Pact Broker: where pacts and verification results meet across teams.
//! stormproof speaks its documented HTTP API: publishing pacts
//! (`PUT /pacts/provider/P/consumer/C/version/V`, tags and branches on the
//! consumer version), and asking `can-i-deploy` (`GET /matrix`). Fetching
//! pacts for verification and publishing results go through the Pact
//! verifier's own broker client (see [`super::verify`]).

use std::path::Path;

use anyhow::Context;
use pact_models::http_utils::HttpAuth;
use serde_json::Value;

use super::pacts;

/// Credentials for the broker.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `Authorization: Bearer TOKEN`.
    Token(String),
    /// Basic authentication.
    User(String, Option<String>),
}

impl Auth {
    /// From the CLI's flags: a token wins over a user.
    pub fn from_flags(token: Option<String>, user: Option<String>, password: Option<String>) -> Option<Auth> {
        match (token, user) {
            (Some(token), _) => Some(Auth::Token(token)),
            (None, Some(user)) => Some(Auth::User(user, password)),
            _ => None,
        }
    }

    /// As the Pact verifier takes it.
    pub fn to_http_auth(&self) -> HttpAuth {
        match self {
            Auth::Token(token) => HttpAuth::Token(token.clone()),
            Auth::User(user, password) => HttpAuth::User(user.clone(), password.clone()),
        }
    }
}

/// A client of one Pact Broker.
pub struct Broker {
    url: String,
    auth: Option<Auth>,
    http: reqwest::Client,
}

/// What publishing did.
#[derive(Debug, Clone)]
pub struct Published {
    /// `consumer → provider` of each pact published.
    pub pacts: Vec<String>,
}

/// The broker's answer to can-i-deploy.
#[derive(Debug, Clone)]
pub struct Deployable {
    /// True when every verification needed has passed.
    pub deployable: bool,
    /// The broker's reason.
    pub reason: String,
    /// One line per row of the matrix: consumer, provider, verified?
    pub rows: Vec<String>,
}

impl Broker {
    /// A client for the broker at `url`.
    pub fn new(url: &str, auth: Option<Auth>) -> anyhow::Result<Broker> {
        let http = crate::http_client().timeout(std::time::Duration::from_secs(30)).build()?;
        Ok(Broker { url: url.trim_end_matches('/').to_string(), auth, http })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.url)).header("Accept", "application/hal+json, application/json");
        match &self.auth {
            Some(Auth::Token(token)) => request.bearer_auth(token),
            Some(Auth::User(user, password)) => request.basic_auth(user, password.as_ref()),
            None => request,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
        let response = request.send().await.with_context(|| format!("{what}: cannot reach the broker at {}", self.url))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        anyhow::ensure!(status.is_success(), "{what}: the broker answered {status}: {}", text.chars().take(300).collect::<String>());
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Publishes every pact at `path` as `consumer_version`, tagging it and
    /// putting it on `branch` when given.
    pub async fn publish(&self, path: &Path, consumer_version: &str, branch: Option<&str>, tags: &[String]) -> anyhow::Result<Published> {
        let files = pacts::find(path)?;
        anyhow::ensure!(!files.is_empty(), "no pacts found in {}", path.display());
        let mut published = Vec::new();
        let mut consumers: Vec<&str> = Vec::new();
        for file in &files {
            let what = format!("publishing {} → {}", file.consumer, file.provider);
            let target = format!("/pacts/provider/{}/consumer/{}/version/{}", seg(&file.provider), seg(&file.consumer), seg(consumer_version));
            self.send(self.request(reqwest::Method::PUT, &target).json(&file.body), &what).await?;
            published.push(format!("{} → {}", file.consumer, file.provider));
            if !consumers.contains(&file.consumer.as_str()) {
                consumers.push(&file.consumer);
            }
        }
        for consumer in consumers {
            let version = format!("/pacticipants/{}/versions/{}", seg(consumer), seg(consumer_version));
            for tag in tags {
                let target = format!("{version}/tags/{}", seg(tag));
                self.send(self.request(reqwest::Method::PUT, &target).json(&serde_json::json!({})), "tagging").await?;
            }
            if let Some(branch) = branch {
                let target = format!("/pacticipants/{}/branches/{}/versions/{}", seg(consumer), seg(branch), seg(consumer_version));
                self.send(self.request(reqwest::Method::PUT, &target).json(&serde_json::json!({})), "recording the branch").await?;
            }
        }
        Ok(Published { pacts: published })
    }

    /// Asks whether `pacticipant` at `version` can be deployed to
    /// `environment` (or alongside the latest versions tagged `to`).
    pub async fn can_i_deploy(&self, pacticipant: &str, version: &str, environment: Option<&str>, to: Option<&str>) -> anyhow::Result<Deployable> {
        let mut query = vec![
            ("q[][pacticipant]", pacticipant.to_string()),
            ("q[][version]", version.to_string()),
            ("latestby", "cvp".to_string()),
        ];
        match (environment, to) {
            (Some(environment), _) => query.push(("environment", environment.to_string())),
            (None, Some(tag)) => {
                query.push(("latest", "true".into()));
                query.push(("tag", tag.to_string()));
            }
            (None, None) => query.push(("latest", "true".into())),
        }
        let matrix = self.send(self.request(reqwest::Method::GET, "/matrix").query(&query), "can-i-deploy").await?;
        let summary = &matrix["summary"];
        let deployable = summary["deployable"].as_bool().unwrap_or(false);
        let reason = summary["reason"].as_str().unwrap_or("the broker gave no reason").to_string();
        let rows = matrix["matrix"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|row| {
                let success = match row["verificationResult"]["success"].as_bool() {
                    Some(true) => "verified",
                    Some(false) => "FAILED",
                    None => "not verified",
                };
                format!(
                    "{} {} → {} {}: {success}",
                    row["consumer"]["name"].as_str().unwrap_or("?"),
                    row["consumer"]["version"]["number"].as_str().unwrap_or("?"),
                    row["provider"]["name"].as_str().unwrap_or("?"),
                    row["provider"]["version"]["number"].as_str().unwrap_or("-"),
                )
            })
            .collect();
        Ok(Deployable { deployable, reason, rows })
    }
}

/// One URL path segment, percent-encoded.
fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}
