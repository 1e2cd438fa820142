//! `stormproof serve SYSTEM.SERVICE`: runs one service — one of the Rust
//! handlers a reference system ships, or the gateway — until SIGTERM. A
//! system with handlers of its own adds one entry to [`handler`].

use std::sync::Arc;
use std::time::Duration;

use super::definition::{Auth, SystemDef};
use super::kit::{self, GatewayConfig, ServeOptions};
use super::shop;
use crate::proxy::{Forwarder, Upstreams};

/// Splits `shop.order` into `("shop", "order")`.
pub fn split_name(full: &str) -> anyhow::Result<(&str, &str)> {
    full.split_once('.')
        .filter(|(s, v)| !s.is_empty() && !v.is_empty())
        .ok_or_else(|| anyhow::anyhow!("expected SYSTEM.SERVICE (e.g. shop.order), got `{full}`"))
}

/// Runs service `full` (`shop.order`, or `SYSTEM.gateway`) until SIGTERM.
pub async fn serve(full: &str, opts: ServeOptions, gateway: GatewayOptions) -> anyhow::Result<()> {
    let (system, service) = split_name(full)?;
    if service == "gateway" {
        return serve_gateway(system, opts, gateway).await;
    }
    handler(system, service, opts).await
}

/// The Rust handlers, by system: the one line a system with its own
/// service code adds.
async fn handler(system: &str, service: &str, opts: ServeOptions) -> anyhow::Result<()> {
    match system {
        shop::SYSTEM => shop::serve(service, opts).await,
        other => anyhow::bail!("no built-in service handlers for system `{other}` (handlers: {})", shop::SYSTEM),
    }
}

/// Gateway settings: routes, JWT secret and demo users.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayOptions {
    /// HMAC secret the gateway signs and checks tokens with.
    #[arg(long, env = "STORMPROOF_JWT_SECRET", default_value = "stormproof-demo-secret", hide_env_values = true)]
    pub jwt_secret: String,
    /// Demo users as USER:PASSWORD (comma-separated).
    #[arg(long, env = "STORMPROOF_USERS", value_delimiter = ',',
          default_value = "user1:stormproof,user2:stormproof,user3:stormproof", hide_env_values = true)]
    pub users: Vec<String>,
    /// Routes as PREFIX=SERVICE (comma-separated; default: the built-in
    /// system's definition).
    #[arg(long, env = ROUTES_ENV, value_delimiter = ',', hide = true)]
    pub routes: Vec<String>,
}

/// The variable that carries a gateway's routes into its container.
pub const ROUTES_ENV: &str = "STORMPROOF_ROUTES";

impl GatewayOptions {
    /// The gateway configuration for system `def`.
    pub fn config(&self, def: &SystemDef) -> anyhow::Result<GatewayConfig> {
        let mut config = self.with_routes(routes(def))?;
        config.authenticate = def.gateway.auth == Auth::Jwt;
        Ok(config)
    }

    fn with_routes(&self, routes: Vec<(String, String)>) -> anyhow::Result<GatewayConfig> {
        let users = self
            .users
            .iter()
            .map(|pair| {
                pair.split_once(':')
                    .map(|(u, p)| (u.to_string(), p.to_string()))
                    .ok_or_else(|| anyhow::anyhow!("users must be USER:PASSWORD, got `{pair}`"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(GatewayConfig { routes, jwt_secret: self.jwt_secret.clone(), users, token_ttl: Duration::from_secs(3600), authenticate: true })
    }

    fn given_routes(&self) -> anyhow::Result<Vec<(String, String)>> {
        self.routes
            .iter()
            .map(|r| r.split_once('=').map(|(p, s)| (p.to_string(), s.to_string())).ok_or_else(|| anyhow::anyhow!("routes must be PREFIX=SERVICE, got `{r}`")))
            .collect()
    }
}

/// `def`'s gateway routes as `(prefix, service)`.
pub fn routes(def: &SystemDef) -> Vec<(String, String)> {
    def.gateway.routes.iter().map(|r| (r.prefix.clone(), r.service.clone())).collect()
}

/// Upstreams at fixed addresses (a Kubernetes Service per upstream).
struct FixedUpstreams(Vec<(String, String)>);

impl Upstreams for FixedUpstreams {
    fn endpoints(&self, service: &str) -> Vec<String> {
        self.0.iter().filter(|(name, _)| name == service).map(|(_, addr)| addr.clone()).collect()
    }
}

async fn serve_gateway(system: &str, opts: ServeOptions, gateway: GatewayOptions) -> anyhow::Result<()> {
    let fixed = opts
        .upstreams
        .iter()
        .map(|(name, url)| {
            let url = url::Url::parse(url)?;
            let host = url.host_str().ok_or_else(|| anyhow::anyhow!("upstream {name} has no host"))?;
            Ok((name.clone(), format!("{host}:{}", url.port_or_known_default().unwrap_or(80))))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let routes = if gateway.routes.is_empty() { routes(&SystemDef::builtin(system)?) } else { gateway.given_routes()? };
    let app = kit::gateway_app(gateway.with_routes(routes)?, Forwarder::new(Arc::new(FixedUpstreams(fixed))));
    let listener = tokio::net::TcpListener::bind(opts.listen).await?;
    crate::process::announce(listener.local_addr()?);
    axum::serve(kit::nodelay(listener), app).with_graceful_shutdown(crate::process::terminated()).await?;
    Ok(())
}
