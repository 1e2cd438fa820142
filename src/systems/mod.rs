//! The reference systems stormproof ships (the shop, so far) and the kit
//! they are built from. `stormproof serve SYSTEM.SERVICE` runs one service;
//! that is what the local platform starts per replica and what a container
//! on Kubernetes runs.

pub mod definition;
pub mod kit;
pub mod shop;

use std::sync::Arc;
use std::time::Duration;

use self::definition::SystemDef;
use self::kit::{Forwarder, GatewayConfig, ServeOptions, Upstreams};

/// Splits `shop.order` into `("shop", "order")`.
pub fn split_name(full: &str) -> anyhow::Result<(&str, &str)> {
    full.split_once('.')
        .filter(|(s, v)| !s.is_empty() && !v.is_empty())
        .ok_or_else(|| anyhow::anyhow!("expected SYSTEM.SERVICE (e.g. shop.order), got `{full}`"))
}

/// Runs service `full` (`shop.order`) until SIGTERM.
pub async fn serve(full: &str, opts: ServeOptions, gateway: GatewayOptions) -> anyhow::Result<()> {
    let (system, service) = split_name(full)?;
    if service == "gateway" {
        let def = SystemDef::builtin(system)?;
        return serve_gateway(&def, opts, gateway).await;
    }
    match system {
        shop::SYSTEM => shop::serve(service, opts).await,
        other => anyhow::bail!("unknown system `{other}` (known: {})", definition::builtin_names().join(", ")),
    }
}

/// Gateway settings: JWT secret and demo users.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayOptions {
    /// HMAC secret the gateway signs and checks tokens with.
    #[arg(long, env = "STORMPROOF_JWT_SECRET", default_value = "stormproof-demo-secret", hide_env_values = true)]
    pub jwt_secret: String,
    /// Demo users as USER:PASSWORD (comma-separated).
    #[arg(long, env = "STORMPROOF_USERS", value_delimiter = ',',
          default_value = "user1:stormproof,user2:stormproof,user3:stormproof", hide_env_values = true)]
    pub users: Vec<String>,
}

impl GatewayOptions {
    /// The gateway configuration for system `def`.
    pub fn config(&self, def: &SystemDef) -> anyhow::Result<GatewayConfig> {
        let users = self
            .users
            .iter()
            .map(|pair| {
                pair.split_once(':')
                    .map(|(u, p)| (u.to_string(), p.to_string()))
                    .ok_or_else(|| anyhow::anyhow!("users must be USER:PASSWORD, got `{pair}`"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(GatewayConfig {
            routes: def.gateway.routes.iter().map(|r| (r.prefix.clone(), r.service.clone())).collect(),
            jwt_secret: self.jwt_secret.clone(),
            users,
            token_ttl: Duration::from_secs(3600),
        })
    }
}

/// Upstreams at fixed addresses (a Kubernetes Service per upstream).
struct FixedUpstreams(Vec<(String, String)>);

impl Upstreams for FixedUpstreams {
    fn endpoints(&self, service: &str) -> Vec<String> {
        self.0.iter().filter(|(name, _)| name == service).map(|(_, addr)| addr.clone()).collect()
    }
}

async fn serve_gateway(def: &SystemDef, opts: ServeOptions, gateway: GatewayOptions) -> anyhow::Result<()> {
    let fixed = opts
        .upstreams
        .iter()
        .map(|(name, url)| {
            let url = url::Url::parse(url)?;
            let host = url.host_str().ok_or_else(|| anyhow::anyhow!("upstream {name} has no host"))?;
            Ok((name.clone(), format!("{host}:{}", url.port_or_known_default().unwrap_or(80))))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let app = kit::gateway_app(gateway.config(def)?, Forwarder::new(Arc::new(FixedUpstreams(fixed))));
    let listener = tokio::net::TcpListener::bind(opts.listen).await?;
    println!("{}{}", kit::LISTENING, listener.local_addr()?);
    axum::serve(kit::nodelay(listener), app).with_graceful_shutdown(kit::terminated()).await?;
    Ok(())
}
