//! `platform accounts ...`: the accounts context from the command line, on
//! `DIR/accounts`. A command that starts a saga (a transfer) returns once
//! the saga has settled, so `accounts show` right after shows its end.

use std::path::Path;
use std::time::Duration;

use std::sync::Arc;

use accounts::{AccountCommand, Accounts, LinePage, RedbStatementGenerations, SagaConfig, Statement, Statements};
use domain_core::{AggregateRoot, Currency, Money};
use serde_json::{Value, json};

use crate::commerce::Commerce;
use crate::error::{Error, Result};
use crate::node::{BusChoice, open_store};
use crate::output::{Format, table};

/// How long a command waits for the sagas it started.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The bus a context command runs its sagas over.
#[derive(Debug, Clone, clap::Args)]
pub struct BusArgs {
    /// Run the sagas over Apache Kafka: ADDR, or $KAFKA_BOOTSTRAP, or
    /// 127.0.0.1:9092. Without it, the in-process bus.
    #[arg(long, num_args = 0..=1, default_missing_value = "", value_name = "ADDR", global = true)]
    pub kafka: Option<String>,
    /// The account order payments are credited to.
    #[arg(long, default_value = "merchant", value_name = "ID", global = true)]
    pub merchant: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum AccountsCommand {
    /// Open an account: `open account_001 --holder 张三 --initial 1000 --currency USD`.
    Open {
        id: String,
        #[arg(long)]
        holder: String,
        /// ISO 4217 code of the account's currency.
        #[arg(long, default_value = "CNY")]
        currency: String,
        /// Opening balance.
        #[arg(long, default_value = "0")]
        initial: String,
    },
    /// Put money in: `deposit account_001 500 --description 工资`.
    Deposit {
        id: String,
        /// In the account's currency ("500", "500.00").
        amount: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Take money out (never below zero).
    Withdraw {
        id: String,
        amount: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Transfer to another account; returns once the target is credited or
    /// the source paid back.
    Transfer {
        from: String,
        to: String,
        amount: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Stop all debits and incoming transfers.
    Freeze {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Lift a freeze.
    Unfreeze { id: String },
    /// Close an empty account.
    Close { id: String },
    /// Holder, currency, balance and status.
    Show { id: String },
    /// Every event of the account (the seed's event history).
    History { id: String },
    /// The statement: holder, status and balance, and each event as a line
    /// with what it did to the balance and the balance after it (the
    /// `accounts.statement` read model).
    Statement {
        id: String,
        /// The first line: the account version it starts at.
        #[arg(long, default_value_t = 1, value_name = "VERSION")]
        from: u64,
        /// Lines to show (1 to 10,000).
        #[arg(long, default_value_t = accounts::statement::DEFAULT_LINES, value_name = "N")]
        limit: usize,
    },
}

/// Runs one accounts command.
pub async fn run(command: AccountsCommand, bus: &BusArgs, data: &Path, format: Format) -> Result<()> {
    let choice = BusChoice::from_flag(bus.kafka.as_deref());
    let config = SagaConfig { merchant_account_id: bus.merchant.clone() };
    if let AccountsCommand::Statement { id, from, limit } = &command {
        // Checked first: a bad page is the caller's mistake, whatever the data.
        let page = LinePage::new(*from, *limit)?;
        let accounts = match choice {
            BusChoice::Kafka(_) => {
                ensure_data(data)?;
                Accounts::new(open_store(data, "accounts")?)
            }
            BusChoice::InProcess => settled(data, config).await?.accounts,
        };
        let statement = open_statements(data, &accounts)?.statement(id, page).await?;
        return print_statement(&statement, format);
    }
    if let AccountsCommand::Show { id } | AccountsCommand::History { id } = &command {
        let accounts = match choice {
            // Over Kafka the consumers are elsewhere: read what is stored.
            BusChoice::Kafka(_) => {
                ensure_data(data)?;
                Accounts::new(open_store(data, "accounts")?)
            }
            // A command killed halfway left sagas unfinished; they finish
            // here before anything is read.
            BusChoice::InProcess => settled(data, config).await?.accounts,
        };
        return match command {
            AccountsCommand::History { .. } => print_history(&accounts, id, format).await,
            _ => print_account(&accounts.get_by_id(id).await?, format),
        };
    }
    let mut commerce = Commerce::open(data, choice, config).await?;
    let accounts = commerce.accounts.clone();
    let id = match command {
        AccountsCommand::Show { id } | AccountsCommand::History { id } | AccountsCommand::Statement { id, .. } => id,
        AccountsCommand::Open { id, holder, currency, initial } => {
            let currency: Currency = currency.parse()?;
            accounts.open(&id, &holder, Money::parse(&initial, currency)?).await?;
            id
        }
        AccountsCommand::Deposit { id, amount, description } => {
            let amount = amount_for(&accounts, &id, &amount).await?;
            accounts.execute(&id, AccountCommand::Deposit { amount, description }, None).await?;
            id
        }
        AccountsCommand::Withdraw { id, amount, description } => {
            let amount = amount_for(&accounts, &id, &amount).await?;
            accounts.execute(&id, AccountCommand::Withdraw { amount, description }, None).await?;
            id
        }
        AccountsCommand::Transfer { from, to, amount, description } => {
            let amount = amount_for(&accounts, &from, &amount).await?;
            accounts.transfer(&from, &to, amount, &description).await?;
            from
        }
        AccountsCommand::Freeze { id, reason } => {
            accounts.execute(&id, AccountCommand::Freeze { reason }, None).await?;
            id
        }
        AccountsCommand::Unfreeze { id } => {
            accounts.execute(&id, AccountCommand::Unfreeze, None).await?;
            id
        }
        AccountsCommand::Close { id } => {
            accounts.execute(&id, AccountCommand::Close, None).await?;
            id
        }
    };
    // The command is stored; now run the sagas it started to their end.
    commerce.settle(SETTLE_TIMEOUT).await?;
    commerce.close().await?;
    print_account(&accounts.get_by_id(&id).await?, format)
}

/// The commerce contexts on the in-process bus with every saga that was
/// left unfinished run to its end.
pub async fn settled(data: &Path, config: SagaConfig) -> Result<Commerce> {
    ensure_data(data)?;
    let mut commerce = Commerce::open(data, BusChoice::InProcess, config).await?;
    commerce.settle(SETTLE_TIMEOUT).await?;
    Ok(commerce)
}

/// A read-only command on a directory that holds nothing says so instead of
/// creating empty stores there (a mistyped `--data`).
pub fn ensure_data(data: &Path) -> Result<()> {
    if ["orders", "accounts"].iter().any(|c| data.join(c).exists()) {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{} holds no orders or accounts yet; check --data, or open an account first (platform accounts open ...)",
        data.display()
    )))
}

/// Parses an amount in the account's currency; "300" or "300.00 USD".
async fn amount_for(accounts: &Accounts, id: &str, text: &str) -> Result<Money> {
    let account = accounts.get_by_id(id).await?;
    let own = account.state().currency.ok_or_else(|| Error::Usage(format!("account `{id}` has no currency")))?;
    let mut parts = text.split_whitespace();
    let (amount, currency) = match (parts.next(), parts.next(), parts.next()) {
        (Some(a), None, None) => (a, own),
        (Some(a), Some(c), None) => (a, c.parse()?),
        _ => return Err(Error::Usage(format!("`{text}` is not an amount (e.g. 300 or \"300.00 CNY\")"))),
    };
    Ok(Money::parse(amount, currency)?)
}

/// One account as JSON (the figures the seed prints).
pub fn account_json(root: &AggregateRoot<accounts::Account>) -> Value {
    let s = root.state();
    let balance = s.balance_money().map(|m| m.to_minor_string());
    json!({
        "account_id": root.id(),
        "account_holder": s.account_holder,
        "balance": balance,
        "currency": s.currency.map(|c| c.to_string()),
        "status": s.status.as_str(),
        "version": root.version(),
    })
}

fn print_account(root: &AggregateRoot<accounts::Account>, format: Format) -> Result<()> {
    let j = account_json(root);
    match format {
        Format::Json => crate::outln!("{}", serde_json::to_string_pretty(&j)?),
        Format::Table | Format::Csv => {
            let cell = |k: &str| j[k].as_str().map_or_else(|| j[k].to_string(), str::to_owned);
            let rows = vec![
                ["account_id", "account_holder", "balance", "currency", "status", "version"]
                    .iter()
                    .map(|k| cell(k))
                    .collect(),
            ];
            crate::outln!("{}", table(&["account", "holder", "balance", "currency", "status", "version"], &rows));
        }
    }
    Ok(())
}

/// The history as JSON rows: time, type, data.
pub async fn history_json(accounts: &Accounts, id: &str) -> Result<Vec<Value>> {
    Ok(accounts.history(id).await?.iter().map(recorded_json).collect())
}

/// One stored event as the APIs and `--format json` show it: `type` is the
/// full wire type (`accounts.MoneyDeposited.v1`), `event_type` its name.
pub fn recorded_json(e: &event_store::RecordedEvent) -> Value {
    json!({
        "version": e.version,
        "timestamp": e.envelope.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "type": e.envelope.event_type.to_string(),
        "event_type": e.envelope.event_type.name(),
        "data": e.envelope.data,
    })
}

async fn print_history(accounts: &Accounts, id: &str, format: Format) -> Result<()> {
    let rows = history_json(accounts, id).await?;
    if rows.is_empty() {
        return Err(accounts::Error::NotFound(id.to_owned()).into());
    }
    match format {
        Format::Json => crate::outln!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Table | Format::Csv => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r["version"].to_string(),
                        r["timestamp"].as_str().unwrap_or("").to_owned(),
                        r["event_type"].as_str().unwrap_or("").to_owned(),
                        r["data"].to_string(),
                    ]
                })
                .collect();
            crate::outln!("{}", table(&["version", "timestamp", "event", "data"], &cells));
        }
    }
    Ok(())
}

/// The account statements of `DIR/accounts` (`statements.redb`), fed from
/// the accounts store.
pub fn open_statements(data: &Path, accounts: &Accounts) -> Result<Statements> {
    let read_model = RedbStatementGenerations::open_serving(data.join("accounts"))?;
    Ok(Statements::new(Arc::clone(accounts.store()), Arc::new(read_model)))
}

/// A statement as JSON: the header and its lines, money as decimal text.
pub fn statement_json(statement: &Statement) -> Value {
    let h = &statement.header;
    let micros = |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let lines: Vec<Value> = statement
        .lines
        .iter()
        .map(|l| {
            json!({
                "version": l.version,
                "position": l.position,
                "timestamp": micros(&l.at),
                "event_type": l.event,
                "change": l.change.map(|c| c.to_string()),
                "balance": l.balance.to_string(),
                "detail": l.detail,
            })
        })
        .collect();
    let (first, last) = (statement.lines.first().map(|l| l.version), statement.lines.last().map(|l| l.version));
    json!({
        "account_id": h.account_id,
        "account_holder": h.holder,
        "currency": h.currency.map(|c| c.to_string()),
        "status": h.status.as_str(),
        "balance": h.balance.to_string(),
        "version": h.version,
        "opened_at": micros(&h.first_at),
        "updated_at": micros(&h.updated_at),
        "lines": lines,
        "next_from": last.filter(|v| *v < h.version).map(|v| v + 1),
        "first_line": first,
    })
}

fn print_statement(statement: &Statement, format: Format) -> Result<()> {
    let j = statement_json(statement);
    if format == Format::Json {
        crate::outln!("{}", serde_json::to_string_pretty(&j)?);
        return Ok(());
    }
    let h = &statement.header;
    let currency = h.currency.map_or_else(String::new, |c| c.to_string());
    let head = vec![vec![
        h.account_id.clone(),
        h.holder.clone(),
        format!("{} {currency}", h.balance),
        h.status.as_str().to_owned(),
        h.version.to_string(),
    ]];
    crate::outln!("{}", table(&["account", "holder", "balance", "status", "events"], &head));
    let rows: Vec<Vec<String>> = statement
        .lines
        .iter()
        .map(|l| {
            vec![
                l.version.to_string(),
                l.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                l.event.clone(),
                l.change
                    .map_or_else(String::new, |c| if c.is_sign_negative() { c.to_string() } else { format!("+{c}") }),
                l.balance.to_string(),
                l.detail.clone(),
            ]
        })
        .collect();
    crate::outln!("{}", table(&["version", "time (UTC)", "event", "change", "balance", "detail"], &rows));
    if let Some(next) = j["next_from"].as_u64() {
        let more = h.version - next + 1;
        crate::outln!("{more} more line{}: --from {next}", if more == 1 { "" } else { "s" });
    } else if statement.lines.is_empty() {
        crate::outln!("no lines on this page: the account has {} (try --from 1)", h.version);
    }
    Ok(())
}
