//! `stormproof serve SYSTEM.SERVICE`: runs one service — one of the Rust
//! handlers a reference system ships, or the gateway — until SIGTERM. A
//! system with handlers of its own adds one entry to [`handler`].

use std::sync::Arc;
use std::time::Duration;

use super::definition::{Auth, SystemDef};
use super::kit::{self, GatewayConfig, ServeOptions};
use super::{library, shop, taxi, telecom};
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
        taxi::SYSTEM => taxi::serve(service, opts).await,
        library::SYSTEM => library::serve(service, opts).await,
        telecom::SYSTEM => telecom::serve(service, opts).await,
        other => anyhow::bail!("no built-in service handlers for system `{other}` (handlers: {}, {}, {}, {})", shop::SYSTEM, taxi::SYSTEM, library::SYSTEM, telecom::SYSTEM),
    }
}

/// Gateway settings: routes, JWT secret and demo users.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayOptions {
    /// HMAC secret the gateway signs and checks tokens with (default: a
    /// random one per run; `up` keeps it in the run dir's `jwt-secret`, mode 0600).
    #[arg(long, env = JWT_SECRET_ENV, hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Demo users as USER:PASSWORD (comma-separated).
    #[arg(long, env = "STORMPROOF_USERS", value_delimiter = ',',
          default_value = DEMO_USERS, hide_env_values = true)]
    pub users: Vec<String>,
    /// Origins a browser may call the gateway from (comma-separated; default:
    /// the definition's `cors_origins`, else the gateway's own and localhost:3000, :5173, :8080).
    #[arg(long = "cors-origin", env = CORS_ENV, value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Users given the admin role (comma-separated; default: the definition's `admins`).
    #[arg(long, env = ADMINS_ENV, value_delimiter = ',', hide = true)]
    pub admins: Vec<String>,
    /// Routes as PREFIX=SERVICE (comma-separated; default: the built-in
    /// system's definition).
    #[arg(long, env = ROUTES_ENV, value_delimiter = ',', hide = true)]
    pub routes: Vec<String>,
}

/// The demo users: three customers and a member of staff (the definition's
/// `admins` names who has the admin role).
pub const DEMO_USERS: &str = "user1:stormproof,user2:stormproof,user3:stormproof,admin:stormproof";
/// The variable that carries a gateway's routes into its container.
pub const ROUTES_ENV: &str = "STORMPROOF_ROUTES";
/// The variable that carries a gateway's admins into its container.
pub const ADMINS_ENV: &str = "STORMPROOF_ADMINS";
/// The variable that carries a gateway's CORS origins into its container.
pub const CORS_ENV: &str = "STORMPROOF_CORS_ORIGINS";
/// The variable that overrides the JWT secret.
pub const JWT_SECRET_ENV: &str = "STORMPROOF_JWT_SECRET";

/// A fresh random JWT secret (244 random bits from the OS's generator, hex).
pub fn random_secret() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

impl GatewayOptions {
    /// The gateway configuration for system `def`, listening on `port`,
    /// signing with `secret`.
    pub fn config(&self, def: &SystemDef, port: u16, secret: String) -> anyhow::Result<GatewayConfig> {
        let mut config = self.with_routes(routes(def), secret)?;
        config.admission = if def.gateway.auth == Auth::Jwt { kit::Admission::Token } else { kit::Admission::Anyone };
        if self.admins.is_empty() {
            config.admins = def.gateway.admins.clone();
        }
        config.origins = match (&def.gateway.cors_origins, self.cors_origins.is_empty()) {
            (Some(origins), true) => origins.clone(),
            (None, true) => kit::default_origins(port),
            (_, false) => self.cors_origins.clone(),
        };
        Ok(config)
    }

    fn with_routes(&self, routes: Vec<(String, String)>, secret: String) -> anyhow::Result<GatewayConfig> {
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
            routes,
            jwt_secret: secret,
            users,
            admins: self.admins.clone(),
            origins: self.cors_origins.clone(),
            token_ttl: Duration::from_secs(3600),
            admission: kit::Admission::Token,
        })
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
    let builtin = if gateway.routes.is_empty() || gateway.admins.is_empty() { SystemDef::builtin(system).ok() } else { None };
    let routes = match (&builtin, gateway.routes.is_empty()) {
        (_, false) => gateway.given_routes()?,
        (Some(def), true) => routes(def),
        (None, true) => anyhow::bail!("no routes for `{system}`: pass --routes PREFIX=SERVICE,..."),
    };
    let secret = gateway.jwt_secret.clone().unwrap_or_else(|| {
        tracing::warn!("no --jwt-secret/{JWT_SECRET_ENV}: signing with a random secret of this process (its tokens die with it)");
        random_secret()
    });
    let mut config = gateway.with_routes(routes, secret)?;
    if let (Some(def), true) = (&builtin, config.admins.is_empty()) {
        config.admins = def.gateway.admins.clone();
    }
    if config.origins.is_empty() {
        config.origins = kit::default_origins(opts.listen.port());
    }
    let app = kit::gateway_app(config, Forwarder::new(Arc::new(FixedUpstreams(fixed))));
    let listener = tokio::net::TcpListener::bind(opts.listen).await?;
    crate::process::announce(listener.local_addr()?);
    axum::serve(kit::nodelay(listener), app).with_graceful_shutdown(crate::process::terminated()).await?;
    Ok(())
}
