//! The `portcullis` command line. Exit status: 0 success, 1 runtime failure, 2 bad
//! configuration or usage.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portcullis::config;
use portcullis::policy::AuthMode;
use portcullis::telemetry::{self, LogFormat};

/// jemalloc instead of glibc's malloc: 10,000 idle keep-alive connections, once closed, left
/// glibc's heaps at their peak. jemalloc's background thread returns freed pages after a
/// second (`dirty_decay_ms`, `muzzy_decay_ms`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts (`_RJEM_MALLOC_CONF` in the environment wins).
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "A reverse-proxy authentication gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The configuration file.
    #[arg(
        short,
        long,
        global = true,
        env = "PORTCULLIS_CONFIG",
        default_value = "gateway.toml"
    )]
    config: PathBuf,
    /// How log lines are written.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "PORTCULLIS_LOG_FORMAT",
        default_value = "human"
    )]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default).
    Run,
    /// Validate the configuration and exit.
    Check {
        /// Also fetch discovery and keys from the provider.
        #[arg(long)]
        online: bool,
    },
    #[cfg(feature = "demo")]
    /// The gateway with a built-in development provider and an echo backend, all on
    /// loopback. Not for production: the provider's users have fixed passwords.
    Demo {
        /// The gateway's address; browsers open http://<this>/.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// The development OpenID provider's address.
        #[arg(long, default_value = "127.0.0.1:8081")]
        provider: SocketAddr,
        /// The echo backend's address.
        #[arg(long, default_value = "127.0.0.1:8082")]
        backend: SocketAddr,
        /// The gateway's admin listener (/healthz, /readyz, /metrics).
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: SocketAddr,
    },
    /// Obtain an access token with the client-credentials grant and print it.
    Token {
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        client_id: String,
        #[arg(long, env = "PORTCULLIS_CLIENT_SECRET")]
        client_secret: String,
        #[arg(long)]
        scope: Option<String>,
    },
    /// Which route matches a request, which rule allows or denies it, and why.
    Explain {
        /// The request method, e.g. GET.
        method: String,
        /// The request URL, e.g. http://app.example.com/api/orders/1.
        url: String,
        /// A bearer token to evaluate.
        #[arg(long)]
        bearer: Option<String>,
    },
    /// Print a fresh random session secret.
    Secret,
    /// Run an echo backend that answers every request with what it received.
    Echo {
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(&cli.config, cli.log_format),
        Command::Check { online } => check(&cli.config, online),
        Command::Secret => {
            println!("{}", portcullis::secret::generate());
            ExitCode::SUCCESS
        }
        Command::Explain {
            method,
            url,
            bearer,
        } => explain(&cli.config, &method, &url, bearer.as_deref()),
        Command::Echo { listen } => echo(listen, cli.log_format),
        Command::Token {
            issuer,
            client_id,
            client_secret,
            scope,
        } => {
            match block_on(portcullis::commands::client_credentials(
                &issuer,
                &client_id,
                &client_secret,
                scope.as_deref(),
            )) {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("portcullis: {e}");
                    ExitCode::from(1)
                }
            }
        }
        #[cfg(feature = "demo")]
        Command::Demo {
            listen,
            provider,
            backend,
            admin,
        } => demo(
            portcullis::demo::Addresses {
                listen,
                provider,
                backend,
                admin,
            },
            cli.log_format,
        ),
    }
}

fn load(path: &std::path::Path) -> Result<config::Config, ExitCode> {
    config::load(path).map_err(|e| {
        eprintln!("portcullis: {e}");
        ExitCode::from(2)
    })
}

fn run(path: &std::path::Path, format: LogFormat) -> ExitCode {
    telemetry::init_logs(format);
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = portcullis::auth::selftest() {
        tracing::error!("{e}");
        return ExitCode::from(1);
    }
    let listen: Vec<String> = config
        .server
        .listen
        .iter()
        .map(ToString::to_string)
        .collect();
    tracing::info!(
        config = %path.display(),
        listen = ?listen,
        admin = ?config.admin,
        routes = config.routes.len(),
        threads = config.server.threads,
        "portcullis starting"
    );
    match portcullis::server::build(config, Some(path.to_path_buf())) {
        Ok(server) => server.run_forever(),
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}

fn check(path: &std::path::Path, online: bool) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = portcullis::auth::selftest() {
        eprintln!("portcullis: {e}");
        return ExitCode::from(1);
    }
    print!("{}", portcullis::commands::summary(&config, path));
    if online {
        match block_on(portcullis::commands::check_online(&config)) {
            Ok(report) => print!("{report}"),
            Err(report) => {
                print!("{report}");
                eprintln!(
                    "portcullis: the provider will refuse this configuration (see FAIL above)"
                );
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}

/// Runs a future on a small runtime of its own (for the commands that are not the server).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(f)
}

fn explain(path: &std::path::Path, method: &str, url: &str, bearer: Option<&str>) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Ok(parsed) = url::Url::parse(url) else {
        eprintln!("portcullis: `{url}` is not an absolute URL such as http://app.example.com/path");
        return ExitCode::from(2);
    };
    println!("request:  {method} {url}");
    // Url::parse has already resolved dot segments; normalize what is left exactly as requests are.
    let normal = match portcullis::policy::path::normalize(parsed.path()) {
        Ok(p) => p,
        Err(e) => {
            println!("decision: refuse (400): {e}");
            return ExitCode::SUCCESS;
        }
    };
    println!("path:     {normal}");
    let host = parsed.host_str().map(|h| match parsed.port() {
        Some(p) => format!("{h}:{p}"),
        None => h.to_owned(),
    });
    let Some(route) = config.routes.find(host.as_deref(), &normal) else {
        println!("route:    none");
        println!("decision: refuse (404): no route matches this host and path");
        return ExitCode::SUCCESS;
    };
    let upstreams: Vec<&str> = route.upstreams.iter().map(|u| &*u.url).collect();
    println!(
        "route:    {:?} (path prefix {}) -> {}",
        route.name,
        route.path,
        upstreams.join(", ")
    );
    println!("auth:     {}", route.auth.as_str());
    if let Some(scopes) = &route.scopes {
        match scopes.required(method) {
            Some(s) => println!("scopes:   {method} needs {}", s.join(" ")),
            None => println!("scopes:   no key covers {method}: refused (403) whatever the token"),
        }
    }
    if !route.allow.is_empty() {
        println!(
            "allow:    {}",
            portcullis::commands::allow_toml(&route.allow)
        );
    }
    match (route.auth, bearer) {
        (AuthMode::Public, _) => println!("decision: allow: the route is public"),
        (_, Some(token)) => print!(
            "{}",
            block_on(portcullis::commands::explain_bearer(
                &config, route, method, token
            ))
        ),
        (AuthMode::Bearer | AuthMode::Any, None) => {
            println!("decision: refuse (401): no credentials given (use --bearer TOKEN)")
        }
        (AuthMode::Login, None) => {
            println!("decision: refuse (401): the route needs a browser session")
        }
    }
    ExitCode::SUCCESS
}

fn echo(listen: SocketAddr, format: LogFormat) -> ExitCode {
    telemetry::init_logs(format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portcullis: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async {
        match portcullis::echo::start(listen).await {
            Ok((addr, task)) => {
                tracing::info!(%addr, "echo backend listening");
                tokio::select! { _ = task => (), _ = tokio::signal::ctrl_c() => () }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("portcullis: cannot listen on {listen}: {e}");
                ExitCode::from(1)
            }
        }
    })
}

#[cfg(feature = "demo")]
fn demo(addrs: portcullis::demo::Addresses, format: LogFormat) -> ExitCode {
    if let Err(e) = addrs.check() {
        eprintln!("portcullis: {e}");
        return ExitCode::from(e.exit_code());
    }
    telemetry::init_logs(format);
    if let Err(e) = portcullis::auth::selftest() {
        tracing::error!("{e}");
        return ExitCode::from(1);
    }
    let (demo, config) = match portcullis::demo::start(addrs) {
        Ok(started) => started,
        Err(e) => {
            eprintln!("portcullis: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let server = match portcullis::server::build(config, None) {
        Ok(server) => server,
        Err(e) => {
            tracing::error!("{e:#}");
            return ExitCode::from(1);
        }
    };
    demo.announce_when_ready();
    // `demo` keeps the provider and the backend running: run_forever never returns.
    server.run_forever()
}
