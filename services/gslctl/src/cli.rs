//! The command line: flags, settings, and which command runs (each
//! command group is a file of [`crate::cmd`]).

use crate::cmd::backoffice::BackOfficeCmd;
use crate::cmd::cards::CardsCmd;
use crate::cmd::orders::Review;
use crate::cmd::submit::SubmitArgs;
use crate::cmd::{self, Ctx};
use crate::output::Format;
use crate::{EXIT_FAILED, exit_for};
use clap::{Parser, Subcommand};
use gsl_proto::v1;
use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

#[derive(Debug, Parser)]
#[command(
    name = "gslctl",
    version,
    about = "Operate the SIM carrier gateway: submit work orders, follow them, inspect them."
)]
pub struct Cli {
    /// Gateway gRPC address.
    #[arg(long, env = "GSL_GATEWAY", global = true)]
    pub gateway: Option<String>,
    /// Bearer token for the command. Without it each command group takes the
    /// credential of its role: the tenant's (`GSL_TOKEN`, or `token =` in the
    /// config file) for orders and cards, the operator's
    /// (`GSL_OPERATOR_TOKEN`, or `operator_token =`) for `backoffice`,
    /// `cards import --tenant` and `cards seed-from-sim`.
    #[arg(long, hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) for a gateway behind TLS.
    #[arg(long, env = "GSL_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
    /// Config file with `gateway = ...`, `token = ...` and `operator_token = ...` lines.
    #[arg(long, env = "GSLCTL_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Work the back-office queue (operator credential: --token, or GSL_OPERATOR_TOKEN).
    #[command(subcommand)]
    Backoffice(BackOfficeCmd),
    /// Submit one operation for cards (inline or from a CSV / xlsx file) or for a purchase batch.
    Submit(Box<SubmitArgs>),
    /// Show a work order.
    Get { id: u64 },
    /// List work orders.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        operation: Option<String>,
        #[arg(long)]
        carrier: Option<String>,
        #[arg(long)]
        card: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// List the items (cards) of a work order.
    Items {
        id: u64,
        /// processing, succeeded or failed.
        #[arg(long)]
        status: Option<String>,
    },
    /// Every work order that touched a card.
    History { card: String },
    /// Cancel an order still in review.
    Cancel { id: u64 },
    /// Approve an order held for review.
    Approve { id: u64 },
    /// Reject an order held for review.
    Reject {
        id: u64,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Follow an order with a progress bar until it ends.
    Watch { id: u64 },
    /// The card registry.
    Cards {
        #[command(subcommand)]
        cmd: CardsCmd,
    },
    /// Push addresses: where work-order events are POSTed, signed (docs/push.md).
    #[command(subcommand)]
    Push(crate::cmd::push::PushCmd),
}

/// Settings after flags, environment and the config file.
struct Settings {
    gateway: String,
    /// `--token`: wins for every command.
    explicit: Option<String>,
    file_token: Option<String>,
    file_operator_token: Option<String>,
    ca: Option<PathBuf>,
}

/// Whose credential a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Tenant,
    Operator,
}

impl Settings {
    /// The credential for `role`: `--token`, then the role's own variable,
    /// then the role's line of the config file. Another role's credential is
    /// never used (with `stack.env` sourced, the tenant's `GSL_TOKEN` must
    /// not stand in for the operator's).
    fn token(&self, role: Role) -> String {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let (var, file) = match role {
            Role::Tenant => ("GSL_TOKEN", &self.file_token),
            Role::Operator => ("GSL_OPERATOR_TOKEN", &self.file_operator_token),
        };
        self.explicit
            .clone()
            .or_else(|| env(var))
            .or_else(|| file.clone())
            .unwrap_or_default()
    }
}

/// The role a command acts in.
pub fn role_of(cmd: &Cmd) -> Role {
    match cmd {
        Cmd::Backoffice(_) => Role::Operator,
        Cmd::Cards {
            cmd: CardsCmd::Import {
                tenant: Some(_), ..
            },
        } => Role::Operator,
        Cmd::Cards {
            cmd: CardsCmd::SeedFromSim { .. },
        } => Role::Operator,
        _ => Role::Tenant,
    }
}

fn settings(cli: &Cli) -> Settings {
    let path = cli.config.clone().or_else(|| {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/gslctl/config"))
    });
    let mut file_gateway = None;
    let mut file_token = None;
    let mut file_operator_token = None;
    if let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) {
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=') {
                match k.trim() {
                    "gateway" => file_gateway = Some(v.trim().to_owned()),
                    "token" => file_token = Some(v.trim().to_owned()),
                    "operator_token" => file_operator_token = Some(v.trim().to_owned()),
                    _ => {}
                }
            }
        }
    }
    Settings {
        gateway: cli
            .gateway
            .clone()
            .or(file_gateway)
            .unwrap_or_else(|| "http://127.0.0.1:50051".into()),
        explicit: cli.token.clone(),
        file_token,
        file_operator_token,
        ca: cli.ca_cert.clone(),
    }
}

async fn channel(s: &Settings) -> Result<Channel, String> {
    let mut ep = Endpoint::from_shared(s.gateway.clone())
        .map_err(|e| format!("gateway address {:?}: {e}", s.gateway))?
        .connect_timeout(Duration::from_secs(5));
    if let Some(ca) = &s.ca {
        let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        ep = ep
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
            .map_err(|e| e.to_string())?;
    }
    ep.connect()
        .await
        .map_err(|e| format!("cannot reach the gateway at {}: {e}", s.gateway))
}

/// Run a command line; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let s = settings(&cli);
    let format = cli.output;
    let token = s.token(role_of(&cli.cmd));
    // Validation that needs no gateway comes first.
    if let Cmd::Submit(a) = &cli.cmd
        && a.validate_only
    {
        return cmd::submit::validate_only(a, format);
    }
    let channel = match channel(&s).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gslctl: {e}");
            return EXIT_FAILED;
        }
    };
    let mut ctx = Ctx {
        format,
        token,
        orders: v1::work_orders_client::WorkOrdersClient::new(channel.clone())
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20),
        registry: v1::registry_client::RegistryClient::new(channel.clone())
            .max_encoding_message_size(64 << 20),
        channel,
    };
    let r = match cli.cmd {
        Cmd::Backoffice(b) => {
            cmd::backoffice::run(ctx.channel.clone(), &ctx.token, format, b).await
        }
        Cmd::Submit(a) => cmd::submit::run(&mut ctx, *a).await,
        Cmd::Get { id } => cmd::orders::get(&mut ctx, id).await,
        Cmd::List {
            status,
            operation,
            carrier,
            card,
            limit,
        } => cmd::orders::list(&mut ctx, status, operation, carrier, card, limit).await,
        Cmd::Items { id, status } => cmd::orders::items(&mut ctx, id, status).await,
        Cmd::History { card } => cmd::orders::history(&mut ctx, card).await,
        Cmd::Cancel { id } => cmd::orders::review(&mut ctx, id, Review::Cancel).await,
        Cmd::Approve { id } => cmd::orders::review(&mut ctx, id, Review::Approve).await,
        Cmd::Reject { id, reason } => {
            cmd::orders::review(&mut ctx, id, Review::Reject(reason)).await
        }
        Cmd::Watch { id } => cmd::orders::watch(&mut ctx, id).await,
        Cmd::Cards { cmd } => cmd::cards::run(&mut ctx, cmd).await,
        Cmd::Push(p) => cmd::push::run(ctx.channel.clone(), &ctx.token, format, p).await,
    };
    match r {
        Ok(code) => code,
        Err(s) => {
            eprintln!("gslctl: {}", s.message());
            exit_for(&s)
        }
    }
}
