//! Campaign state: one row per planned attempt with its status, in SQLite (embedded default) or
//! PostgreSQL (workers on several machines sharing one campaign).
//!
//! The protocol that makes `kill -9` safe: an attempt is *claimed* (status `claimed`, a worker id and a
//! lease deadline) before it is sent, and *recorded* (status `done` or `error`, with the reply and the
//! verdicts) right after. A claim whose lease ran out — its worker died — is claimable again, so nothing
//! is lost; a record only applies to an attempt not yet recorded, so a late second record (a worker that
//! was only slow) changes nothing, and every attempt is recorded exactly once. On PostgreSQL the claim is
//! one `UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED)`, so concurrent workers never claim the same row.

use std::{
    path::Path,
    sync::Mutex,
    time::{SystemTime, UNIX_EPOCH},
};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::{RedteamError, attack::Attack, campaign::Planned};

/// A claimed attempt: what a worker needs to run it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub idx: i64,
    pub risk: String,
    pub category: String,
    pub strategy: String,
    pub attack: Attack,
}

/// The outcome written when an attempt finishes.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub id: String,
    /// `done`, or `error` when the target failed after its retries.
    pub error: bool,
    pub success: bool,
    pub tokens: u64,
    /// The result document (reply, transcript, verdicts) as JSON.
    pub result: String,
    /// The target's error, for `error` outcomes.
    pub message: Option<String>,
}

/// One attempt as stored, for reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRow {
    pub id: String,
    pub idx: i64,
    pub risk: String,
    pub category: String,
    pub strategy: String,
    pub lang: String,
    /// `pending`, `claimed`, `done` or `error`.
    pub status: String,
    /// Times the attempt was claimed (more than 1: a worker died or was too slow holding it).
    pub claims: i64,
    pub success: Option<bool>,
    pub tokens: i64,
    /// The planned attack (JSON).
    pub attack: String,
    /// The result document (JSON), once recorded.
    pub result: Option<String>,
}

/// Counts per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub planned: u64,
    pub pending: u64,
    pub claimed: u64,
    pub done: u64,
    pub error: u64,
    pub success: u64,
    pub tokens: u64,
    /// Sum over attempts of claims beyond the first (resends after a crash or lease expiry).
    pub reclaims: u64,
}

/// A campaign known to the store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignRow {
    pub name: String,
    /// The campaign file as JSON.
    pub config: String,
    /// Fingerprint of the plan (ids in order).
    pub fingerprint: String,
    pub planned: u64,
}

/// An open campaign store.
#[derive(Debug)]
pub struct Store {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Sqlite(Mutex<Connection>),
    Postgres(tokio_postgres::Client),
}

const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS campaigns (
  name TEXT PRIMARY KEY, config TEXT NOT NULL, fingerprint TEXT NOT NULL, planned INTEGER NOT NULL,
  created TEXT NOT NULL DEFAULT (datetime('now')));
CREATE TABLE IF NOT EXISTS attempts (
  campaign TEXT NOT NULL, id TEXT NOT NULL, idx INTEGER NOT NULL, risk TEXT NOT NULL,
  category TEXT NOT NULL, strategy TEXT NOT NULL, lang TEXT NOT NULL, attack TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending', worker TEXT, lease_until INTEGER NOT NULL DEFAULT 0,
  claims INTEGER NOT NULL DEFAULT 0, success INTEGER, tokens INTEGER NOT NULL DEFAULT 0,
  result TEXT, finished INTEGER, PRIMARY KEY (campaign, id));
CREATE INDEX IF NOT EXISTS attempts_queue ON attempts (campaign, status, idx);";

const POSTGRES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS redteam_campaigns (
  name TEXT PRIMARY KEY, config TEXT NOT NULL, fingerprint TEXT NOT NULL, planned BIGINT NOT NULL,
  created TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS redteam_attempts (
  campaign TEXT NOT NULL, id TEXT NOT NULL, idx BIGINT NOT NULL, risk TEXT NOT NULL,
  category TEXT NOT NULL, strategy TEXT NOT NULL, lang TEXT NOT NULL, attack TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending', worker TEXT, lease_until BIGINT NOT NULL DEFAULT 0,
  claims BIGINT NOT NULL DEFAULT 0, success BOOLEAN, tokens BIGINT NOT NULL DEFAULT 0,
  result TEXT, finished TIMESTAMPTZ, PRIMARY KEY (campaign, id));
CREATE INDEX IF NOT EXISTS redteam_attempts_queue ON redteam_attempts (campaign, status, idx);";

/// Advisory lock taken while creating tables and registering a plan, so workers starting together
/// do not race.
const SCHEMA_LOCK: i64 = 0x5245_4454_4541_4d31;

/// Milliseconds since the Unix epoch by this machine's clock (SQLite leases; PostgreSQL uses the
/// server's clock so machines with skewed clocks agree).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

const PG_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

fn lang_of(planned: &Planned) -> &'static str {
    crate::campaign::lang_code(planned.lang)
}

fn to_json<T: Serialize>(value: &T) -> Result<String, RedteamError> {
    serde_json::to_string(value).map_err(|e| RedteamError::Store(e.to_string()))
}

fn attack_of(text: &str) -> Result<Attack, RedteamError> {
    serde_json::from_str(text).map_err(|e| RedteamError::Store(format!("stored attack: {e}")))
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Store {
    /// Opens (creating) the SQLite store at `path`.
    pub fn open(path: &Path) -> Result<Store, RedteamError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|error| RedteamError::Io { path: dir.display().to_string(), error })?;
        }
        let conn = Connection::open(path)?;
        // WAL + synchronous=NORMAL survives a killed process (what resume needs) without an fsync
        // per record; busy_timeout lets several local worker processes share the file.
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")?;
        conn.execute_batch(SQLITE_SCHEMA)?;
        Ok(Store { inner: Inner::Sqlite(Mutex::new(conn)) })
    }

    /// Connects to PostgreSQL at `url`, creating the tables. Call inside a Tokio runtime.
    pub async fn connect(url: &str) -> Result<Store, RedteamError> {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            // A dropped connection surfaces as the client's next error.
            let _ = connection.await;
        });
        client
            .batch_execute(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({SCHEMA_LOCK}); {POSTGRES_SCHEMA} COMMIT;"
            ))
            .await?;
        Ok(Store { inner: Inner::Postgres(client) })
    }

    /// Opens `location`: a `postgres://` URL, else a SQLite path (`sqlite://` prefix optional).
    pub async fn open_location(location: &str) -> Result<Store, RedteamError> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            Store::connect(location).await
        } else {
            Store::open(Path::new(location.strip_prefix("sqlite://").unwrap_or(location)))
        }
    }

    /// `sqlite` or `postgres`.
    pub fn engine(&self) -> &'static str {
        match self.inner {
            Inner::Sqlite(_) => "sqlite",
            Inner::Postgres(_) => "postgres",
        }
    }

    fn sqlite(
        conn: &Mutex<Connection>,
    ) -> Result<std::sync::MutexGuard<'_, Connection>, RedteamError> {
        conn.lock()
            .map_err(|_| RedteamError::Store("the SQLite connection lock is poisoned".into()))
    }

    /// Registers a campaign and inserts its planned attempts, unless already there. A campaign of the
    /// same name with a different plan is an error (rename it, or delete the old one).
    pub async fn register(
        &self,
        name: &str,
        config_json: &str,
        plan: &[Planned],
    ) -> Result<CampaignRow, RedteamError> {
        let fingerprint = format!(
            "{:016x}",
            crate::campaign::fnv1a(&plan.iter().map(|p| p.id.as_bytes()).collect::<Vec<_>>())
        );
        let planned = plan.len() as i64;
        let existing = self.campaign(name).await?;
        if let Some(row) = existing {
            if row.fingerprint != fingerprint {
                return Err(RedteamError::Config {
                    path: name.to_owned(),
                    message: format!(
                        "campaign `{name}` is already in the store with a different plan ({} attempts, \
                         fingerprint {}); give the changed campaign a new name",
                        row.planned, row.fingerprint
                    ),
                });
            }
            return Ok(row);
        }
        match &self.inner {
            Inner::Sqlite(conn) => {
                let mut conn = Self::sqlite(conn)?;
                let tx = conn.transaction()?;
                {
                    let mut insert = tx.prepare(
                        "INSERT OR IGNORE INTO attempts (campaign, id, idx, risk, category, strategy, lang, attack)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )?;
                    for p in plan {
                        insert.execute(params![
                            name,
                            p.id,
                            p.idx,
                            p.risk,
                            p.category,
                            p.strategy,
                            lang_of(p),
                            to_json(&p.attack)?
                        ])?;
                    }
                }
                tx.execute(
                    "INSERT OR IGNORE INTO campaigns (name, config, fingerprint, planned) VALUES (?1, ?2, ?3, ?4)",
                    params![name, config_json, fingerprint, planned],
                )?;
                tx.commit()?;
            }
            Inner::Postgres(client) => {
                // Under the advisory lock, so two workers registering at once insert the plan once.
                client
                    .batch_execute(&format!("BEGIN; SELECT pg_advisory_xact_lock({SCHEMA_LOCK});"))
                    .await?;
                let result =
                    self.pg_insert_plan(client, name, config_json, &fingerprint, plan).await;
                let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
                client.batch_execute(end).await?;
                result?;
            }
        }
        self.campaign(name).await?.ok_or_else(|| RedteamError::NoCampaign(name.to_owned()))
    }

    async fn pg_insert_plan(
        &self,
        client: &tokio_postgres::Client,
        name: &str,
        config_json: &str,
        fingerprint: &str,
        plan: &[Planned],
    ) -> Result<(), RedteamError> {
        let exists = client
            .query_opt("SELECT 1 FROM redteam_campaigns WHERE name = $1", &[&name])
            .await?
            .is_some();
        if exists {
            return Ok(());
        }
        for chunk in plan.chunks(2000) {
            let ids: Vec<&str> = chunk.iter().map(|p| p.id.as_str()).collect();
            let idx: Vec<i64> = chunk.iter().map(|p| p.idx).collect();
            let risks: Vec<&str> = chunk.iter().map(|p| p.risk.as_str()).collect();
            let cats: Vec<&str> = chunk.iter().map(|p| p.category.as_str()).collect();
            let strategies: Vec<&str> = chunk.iter().map(|p| p.strategy.as_str()).collect();
            let langs: Vec<&str> = chunk.iter().map(lang_of).collect();
            let attacks: Vec<String> =
                chunk.iter().map(|p| to_json(&p.attack)).collect::<Result<_, _>>()?;
            client
                .execute(
                    "INSERT INTO redteam_attempts (campaign, id, idx, risk, category, strategy, lang, attack)
                     SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[],
                                              $7::text[], $8::text[])
                     ON CONFLICT DO NOTHING",
                    &[&name, &ids, &idx, &risks, &cats, &strategies, &langs, &attacks],
                )
                .await?;
        }
        let planned = plan.len() as i64;
        client
            .execute(
                "INSERT INTO redteam_campaigns (name, config, fingerprint, planned) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                &[&name, &config_json, &fingerprint, &planned],
            )
            .await?;
        Ok(())
    }

    /// The campaign called `name`, if registered.
    pub async fn campaign(&self, name: &str) -> Result<Option<CampaignRow>, RedteamError> {
        let row = match &self.inner {
            Inner::Sqlite(conn) => Self::sqlite(conn)?
                .query_row(
                    "SELECT name, config, fingerprint, planned FROM campaigns WHERE name = ?1",
                    [name],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)?)),
                )
                .optional()?,
            Inner::Postgres(client) => match client
                .query_opt(
                    "SELECT name, config, fingerprint, planned FROM redteam_campaigns WHERE name = $1",
                    &[&name],
                )
                .await?
            {
                Some(r) => Some((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get::<_, i64>(3)?)),
                None => None,
            },
        };
        Ok(row.map(|(name, config, fingerprint, planned)| CampaignRow {
            name,
            config,
            fingerprint,
            planned: count(planned),
        }))
    }

    /// Every campaign's name, oldest first.
    pub async fn campaigns(&self) -> Result<Vec<String>, RedteamError> {
        Ok(match &self.inner {
            Inner::Sqlite(conn) => {
                let conn = Self::sqlite(conn)?;
                let mut stmt = conn.prepare("SELECT name FROM campaigns ORDER BY created, name")?;
                stmt.query_map([], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?
            }
            Inner::Postgres(client) => client
                .query("SELECT name FROM redteam_campaigns ORDER BY created, name", &[])
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Claims up to `n` attempts for `worker` for `lease_ms`: pending ones in plan order, and ones
    /// whose lease ran out (their worker died).
    pub async fn claim(
        &self,
        campaign: &str,
        worker: &str,
        n: usize,
        lease_ms: i64,
    ) -> Result<Vec<Claimed>, RedteamError> {
        let n = i64::try_from(n.max(1)).unwrap_or(1);
        let rows: Vec<(String, i64, String, String, String, String)> = match &self.inner {
            Inner::Sqlite(conn) => {
                let mut conn = Self::sqlite(conn)?;
                let now = now_ms();
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let mut rows = Vec::new();
                {
                    let mut pick = tx.prepare(
                        "SELECT id, idx, risk, category, strategy, attack FROM attempts
                         WHERE campaign = ?1 AND status = ?2 AND (?2 = 'pending' OR lease_until < ?3)
                         ORDER BY idx LIMIT ?4",
                    )?;
                    for status in ["claimed", "pending"] {
                        let left = n - rows.len() as i64;
                        if left <= 0 {
                            break;
                        }
                        let found = pick
                            .query_map(params![campaign, status, now, left], |r| {
                                Ok((
                                    r.get(0)?,
                                    r.get(1)?,
                                    r.get(2)?,
                                    r.get(3)?,
                                    r.get(4)?,
                                    r.get(5)?,
                                ))
                            })?
                            .collect::<Result<Vec<_>, _>>()?;
                        rows.extend(found);
                    }
                    let mut mark = tx.prepare(
                        "UPDATE attempts SET status = 'claimed', worker = ?1, lease_until = ?2,
                         claims = claims + 1 WHERE campaign = ?3 AND id = ?4",
                    )?;
                    for row in &rows {
                        mark.execute(params![worker, now + lease_ms, campaign, row.0])?;
                    }
                }
                tx.commit()?;
                rows
            }
            Inner::Postgres(client) => client
                .query(
                    &format!(
                        // The picked rows are a materialised CTE: as a plain subquery the planner may
                        // rescan it per joined row, and each rescan (LIMIT, SKIP LOCKED, a volatile
                        // clock) can pick other rows, claiming more than asked.
                        "WITH c AS MATERIALIZED (
                           SELECT id FROM redteam_attempts
                           WHERE campaign = $1 AND (status = 'pending'
                                 OR (status = 'claimed' AND lease_until < {PG_NOW_MS}))
                           ORDER BY idx LIMIT $4 FOR UPDATE SKIP LOCKED)
                         UPDATE redteam_attempts a SET status = 'claimed', worker = $2,
                           lease_until = {PG_NOW_MS} + $3, claims = a.claims + 1
                         FROM c WHERE a.campaign = $1 AND a.id = c.id
                         RETURNING a.id, a.idx, a.risk, a.category, a.strategy, a.attack"
                    ),
                    &[&campaign, &worker, &lease_ms, &n],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok((
                        r.try_get(0)?,
                        r.try_get(1)?,
                        r.try_get(2)?,
                        r.try_get(3)?,
                        r.try_get(4)?,
                        r.try_get(5)?,
                    ))
                })
                .collect::<Result<Vec<_>, tokio_postgres::Error>>()?,
        };
        let mut claimed: Vec<Claimed> = rows
            .into_iter()
            .map(|(id, idx, risk, category, strategy, attack)| {
                Ok(Claimed { id, idx, risk, category, strategy, attack: attack_of(&attack)? })
            })
            .collect::<Result<_, RedteamError>>()?;
        claimed.sort_by_key(|c| c.idx);
        Ok(claimed)
    }

    /// Records finished attempts; an attempt already recorded keeps its first record. Returns how many
    /// rows this call recorded.
    pub async fn record(
        &self,
        campaign: &str,
        outcomes: &[Outcome],
    ) -> Result<usize, RedteamError> {
        let mut recorded = 0;
        match &self.inner {
            Inner::Sqlite(conn) => {
                let mut conn = Self::sqlite(conn)?;
                let tx = conn.transaction()?;
                {
                    let mut update = tx.prepare(
                        "UPDATE attempts SET status = ?1, success = ?2, tokens = ?3, result = ?4, finished = ?5
                         WHERE campaign = ?6 AND id = ?7 AND status NOT IN ('done', 'error')",
                    )?;
                    for o in outcomes {
                        let status = if o.error { "error" } else { "done" };
                        recorded += update.execute(params![
                            status,
                            o.success,
                            i64::try_from(o.tokens).unwrap_or(i64::MAX),
                            o.result,
                            now_ms(),
                            campaign,
                            o.id
                        ])?;
                    }
                }
                tx.commit()?;
            }
            Inner::Postgres(client) => {
                for o in outcomes {
                    let status = if o.error { "error" } else { "done" };
                    let tokens = i64::try_from(o.tokens).unwrap_or(i64::MAX);
                    recorded += client
                        .execute(
                            "UPDATE redteam_attempts SET status = $1, success = $2, tokens = $3, result = $4,
                               finished = now()
                             WHERE campaign = $5 AND id = $6 AND status NOT IN ('done', 'error')",
                            &[&status, &o.success, &tokens, &o.result, &campaign, &o.id],
                        )
                        .await? as usize;
                }
            }
        }
        Ok(recorded)
    }

    /// Hands claimed attempts back to the queue (a worker stopping before it sent them).
    pub async fn release(
        &self,
        campaign: &str,
        worker: &str,
        ids: &[String],
    ) -> Result<(), RedteamError> {
        match &self.inner {
            Inner::Sqlite(conn) => {
                let mut conn = Self::sqlite(conn)?;
                let tx = conn.transaction()?;
                {
                    let mut update = tx.prepare(
                        "UPDATE attempts SET status = 'pending', claims = claims - 1
                         WHERE campaign = ?1 AND id = ?2 AND worker = ?3 AND status = 'claimed'",
                    )?;
                    for id in ids {
                        update.execute(params![campaign, id, worker])?;
                    }
                }
                tx.commit()?;
            }
            Inner::Postgres(client) => {
                client
                    .execute(
                        "UPDATE redteam_attempts SET status = 'pending', claims = claims - 1
                         WHERE campaign = $1 AND id = ANY($2) AND worker = $3 AND status = 'claimed'",
                        &[&campaign, &ids, &worker],
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Puts attempts that ended in an error back in the queue (a rerun after fixing the target).
    pub async fn requeue_errors(&self, campaign: &str) -> Result<u64, RedteamError> {
        Ok(match &self.inner {
            Inner::Sqlite(conn) => Self::sqlite(conn)?.execute(
                "UPDATE attempts SET status = 'pending', result = NULL WHERE campaign = ?1 AND status = 'error'",
                [campaign],
            )? as u64,
            Inner::Postgres(client) => {
                client
                    .execute(
                        "UPDATE redteam_attempts SET status = 'pending', result = NULL
                         WHERE campaign = $1 AND status = 'error'",
                        &[&campaign],
                    )
                    .await?
            }
        })
    }

    /// Counts per status for a campaign.
    pub async fn counts(&self, campaign: &str) -> Result<Counts, RedteamError> {
        const SQL: &str = "SELECT status, COUNT(*), COALESCE(SUM(CASE WHEN success THEN 1 ELSE 0 END), 0),
            COALESCE(SUM(tokens), 0), COALESCE(SUM(CASE WHEN claims > 1 THEN claims - 1 ELSE 0 END), 0)
            FROM {T} WHERE campaign = {P} GROUP BY status";
        let rows: Vec<(String, i64, i64, i64, i64)> = match &self.inner {
            Inner::Sqlite(conn) => {
                let conn = Self::sqlite(conn)?;
                let mut stmt =
                    conn.prepare(&SQL.replace("{T}", "attempts").replace("{P}", "?1"))?;
                stmt.query_map([campaign], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<Result<Vec<_>, _>>()?
            }
            Inner::Postgres(client) => client
                .query(
                    &SQL.replace("{T}", "redteam_attempts")
                        .replace("{P}", "$1")
                        .replace("SUM(tokens)", "SUM(tokens)::bigint")
                        .replace("ELSE 0 END), 0)", "ELSE 0 END), 0)::bigint"),
                    &[&campaign],
                )
                .await?
                .iter()
                .map(|r| {
                    Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?))
                })
                .collect::<Result<Vec<_>, tokio_postgres::Error>>()?,
        };
        let mut c = Counts::default();
        for (status, n, success, tokens, reclaims) in rows {
            let n = count(n);
            c.planned += n;
            c.success += count(success);
            c.tokens += count(tokens);
            c.reclaims += count(reclaims);
            match status.as_str() {
                "pending" => c.pending += n,
                "claimed" => c.claimed += n,
                "done" => c.done += n,
                _ => c.error += n,
            }
        }
        Ok(c)
    }

    /// Every attempt of a campaign in plan order.
    pub async fn attempts(&self, campaign: &str) -> Result<Vec<AttemptRow>, RedteamError> {
        const SQL: &str =
            "SELECT id, idx, risk, category, strategy, lang, status, claims, success, tokens,
            attack, result FROM {T} WHERE campaign = {P} ORDER BY idx";
        Ok(match &self.inner {
            Inner::Sqlite(conn) => {
                let conn = Self::sqlite(conn)?;
                let mut stmt =
                    conn.prepare(&SQL.replace("{T}", "attempts").replace("{P}", "?1"))?;
                stmt.query_map([campaign], |r| {
                    Ok(AttemptRow {
                        id: r.get(0)?,
                        idx: r.get(1)?,
                        risk: r.get(2)?,
                        category: r.get(3)?,
                        strategy: r.get(4)?,
                        lang: r.get(5)?,
                        status: r.get(6)?,
                        claims: r.get(7)?,
                        success: r.get(8)?,
                        tokens: r.get(9)?,
                        attack: r.get(10)?,
                        result: r.get(11)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?
            }
            Inner::Postgres(client) => client
                .query(&SQL.replace("{T}", "redteam_attempts").replace("{P}", "$1"), &[&campaign])
                .await?
                .iter()
                .map(|r| {
                    Ok(AttemptRow {
                        id: r.try_get(0)?,
                        idx: r.try_get(1)?,
                        risk: r.try_get(2)?,
                        category: r.try_get(3)?,
                        strategy: r.try_get(4)?,
                        lang: r.try_get(5)?,
                        status: r.try_get(6)?,
                        claims: r.try_get(7)?,
                        success: r.try_get(8)?,
                        tokens: r.try_get(9)?,
                        attack: r.try_get(10)?,
                        result: r.try_get(11)?,
                    })
                })
                .collect::<Result<Vec<_>, tokio_postgres::Error>>()?,
        })
    }

    /// Milliseconds until the earliest live lease of `campaign` runs out (`None` when no attempt is
    /// claimed): how long a worker that found nothing to claim should wait before looking again.
    pub async fn next_lease_expiry_ms(&self, campaign: &str) -> Result<Option<i64>, RedteamError> {
        let until: Option<i64> = match &self.inner {
            Inner::Sqlite(conn) => Self::sqlite(conn)?
                .query_row(
                    "SELECT MIN(lease_until) - ?2 FROM attempts WHERE campaign = ?1 AND status = 'claimed'",
                    params![campaign, now_ms()],
                    |r| r.get(0),
                )
                .optional()?
                .flatten(),
            Inner::Postgres(client) => client
                .query_one(
                    &format!(
                        "SELECT (MIN(lease_until) - {PG_NOW_MS})::bigint FROM redteam_attempts
                         WHERE campaign = $1 AND status = 'claimed'"
                    ),
                    &[&campaign],
                )
                .await?
                .try_get(0)?,
        };
        Ok(until.map(|ms| ms.max(0)))
    }
}
