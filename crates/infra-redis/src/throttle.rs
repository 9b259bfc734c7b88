//! The login throttle, with counters shared by every instance.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use authd_application::PortError;
use authd_application::ports::{LoginThrottle, ThrottleKey, ThrottleVerdict};
use authd_domain::{ClientNetwork, IpCap, LoginBackoff, retry_after};
use fred::clients::Pool;
use fred::prelude::ClientLike;
use fred::types::{ClusterHash, CustomCommand};

use crate::client::{fail_fast, options};
use crate::errors::port_error;

/// Abandoned failure counters go away after this long without an attempt.
const FAILURES_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Admits an attempt on an account, atomically: refused while the lock lasts (answers `{0,
/// ms left, 0}`), otherwise counted, locking the account for the back-off step the count
/// reached (answers `{1, failures, the lock's end before it or 0}`, so that an attempt the
/// network refuses can be undone exactly). The same decision as
/// `authd_domain::LoginBackoff::admit`, with the lock lengths handed in from it (`ARGV[3..]`:
/// the lock at the threshold, the next, ... the cap), since a script cannot call Rust. Time is
/// the server's, so instances with skewed clocks agree. KEYS[1] the account's hash (`f`
/// failures, `u` locked until, ms); ARGV[1] the threshold, ARGV[2] the key's TTL in ms.
const ADMIT_ACCOUNT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'f', 'u')
local failures = tonumber(state[1] or '0')
local locked_until = tonumber(state[2] or '0')
if locked_until > now then
  return {0, locked_until - now, 0}
end
failures = failures + 1
local threshold = tonumber(ARGV[1])
if failures >= threshold then
  local step = math.min(failures - threshold + 1, #ARGV - 2)
  redis.call('HSET', KEYS[1], 'f', failures, 'u', now + tonumber(ARGV[2 + step]))
else
  redis.call('HSET', KEYS[1], 'f', failures)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, failures, locked_until}
";

/// Gives an admitted attempt's count back to an account, lifting the lock when the count falls
/// below the threshold (ARGV[1]); with ARGV[2] = `reset`, forgets the account instead.
const RELEASE_ACCOUNT: &str = r"
if ARGV[2] == 'reset' then
  return redis.call('DEL', KEYS[1])
end
local failures = tonumber(redis.call('HGET', KEYS[1], 'f') or '0')
if failures > 0 then
  failures = failures - 1
  redis.call('HSET', KEYS[1], 'f', failures)
  if failures < tonumber(ARGV[1]) then
    redis.call('HDEL', KEYS[1], 'u')
  end
end
return failures
";

/// Undoes an admission of an account whose attempt the network refused: gives its count back
/// and puts back the lock it replaced (ARGV[2], the lock's end before, `0` for none), so the
/// refused attempt counts nothing, not even a back-off step. Below the threshold (ARGV[1])
/// there is no lock. Nothing else can have been admitted on the account in between: at or past
/// the threshold the admission set a lock that refuses every other attempt.
const UNDO_ACCOUNT: &str = r"
local failures = tonumber(redis.call('HGET', KEYS[1], 'f') or '0')
if failures > 0 then
  failures = failures - 1
  redis.call('HSET', KEYS[1], 'f', failures)
end
if failures < tonumber(ARGV[1]) or ARGV[2] == '0' then
  redis.call('HDEL', KEYS[1], 'u')
else
  redis.call('HSET', KEYS[1], 'u', ARGV[2])
end
return failures
";

/// Admits an attempt from a network, atomically: `{0, ms left}` when its window is at the
/// limit (ARGV[1]), else counted (a new window of ARGV[2] ms opens at the first attempt) and
/// `{1, count}`. The decision of `authd_domain::IpCap::admit`.
const ADMIT_NETWORK: &str = r"
local left = redis.call('PTTL', KEYS[1])
if left > 0 then
  local count = tonumber(redis.call('GET', KEYS[1]) or '0')
  if count >= tonumber(ARGV[1]) then
    return {0, left}
  end
  return {1, redis.call('INCR', KEYS[1])}
end
redis.call('SET', KEYS[1], 1, 'PX', ARGV[2])
return {1, 1}
";

/// Gives an attempt's count back to a network (the window's TTL stays).
const RELEASE_NETWORK: &str = r"
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
";

/// [`LoginThrottle`] on Redis: per-account back-off and a per-network cap, as the HTTP contract
/// describes them. See the crate docs for the keys.
///
/// Each counter is decided by one Lua script, so checking, counting and answering is one atomic
/// step per counter. The account's and the network's scripts travel in one pipeline (one round
/// trip); they are two scripts, not one, because the two keys hash to different cluster slots.
/// When one refuses and the other admitted, the admitted count is given back.
///
/// The network rule is a fixed window that opens at the first attempt and lasts the cap's
/// window (the key's own TTL). Like any fixed window it can let up to twice the limit through
/// in a short span straddling the end of one window and the start of the next; for a cap meant
/// to blunt credential stuffing, not to count exactly, that is enough.
///
/// When Redis cannot answer, admission fails with `Unavailable(Cache)` (the login answers
/// `503`): the counters that decide are shared, and a per-instance stand-in would hand every
/// locked account fresh attempts on every instance for as long as the outage lasts.
pub struct RedisLoginThrottle {
    client: Pool,
    prefix: String,
    backoff: LoginBackoff,
    /// The back-off's lock lengths in ms, from the threshold on: the scripts' arguments.
    steps: Vec<i64>,
    ip_cap: IpCap,
}

/// Which way an account's count is released.
#[derive(Clone, Copy)]
enum Release {
    /// A success: the account's failures are forgotten.
    Reset,
    /// An attempt that decided nothing: its count is given back.
    Withdraw,
}

impl RedisLoginThrottle {
    /// Back-off per account (and per device), a cap per network. Every key starts with
    /// `prefix`.
    pub fn new(
        client: Pool,
        prefix: impl Into<String>,
        backoff: LoginBackoff,
        ip_cap: IpCap,
    ) -> Self {
        Self {
            client,
            prefix: prefix.into(),
            backoff,
            steps: backoff.steps().into_iter().map(millis).collect(),
            ip_cap,
        }
    }

    fn account_key(&self, key: &ThrottleKey) -> String {
        match key {
            ThrottleKey::Account(account) => format!("{}:throttle:account:{account}", self.prefix),
            ThrottleKey::Device(device) => format!("{}:throttle:device:{device}", self.prefix),
        }
    }

    fn network_key(&self, ip: IpAddr) -> String {
        format!("{}:throttle:net:{}", self.prefix, ClientNetwork::of(ip))
    }

    async fn admit_redis(
        &self,
        account: &ThrottleKey,
        ip: Option<IpAddr>,
    ) -> Result<ThrottleVerdict, PortError> {
        let pipeline = self
            .client
            .next_connected()
            .pipeline()
            .with_options(&options());
        let mut account_args = vec![i64::from(self.backoff.max_failures()), millis(FAILURES_TTL)];
        account_args.extend(&self.steps);
        let _: () = pipeline
            .custom(
                eval(),
                script_call(ADMIT_ACCOUNT, self.account_key(account), account_args),
            )
            .await
            .map_err(port_error)?;
        if let Some(ip) = ip {
            let network_args = vec![i64::from(self.ip_cap.limit()), millis(self.ip_cap.window())];
            let _: () = pipeline
                .custom(
                    eval(),
                    script_call(ADMIT_NETWORK, self.network_key(ip), network_args),
                )
                .await
                .map_err(port_error)?;
        }
        let replies: Vec<Vec<i64>> = pipeline.all().await.map_err(port_error)?;
        let reply = |n: usize| {
            replies.get(n).map(|reply| {
                let field = |i: usize| reply.get(i).copied().unwrap_or(0);
                (field(0), field(1), field(2))
            })
        };
        let (account_admitted, account_answer, lock_before) = reply(0).unwrap_or((1, 0, 0));
        let by_account = (account_admitted, account_answer);
        let by_network = reply(1).map(|(admitted, answer, _)| (admitted, answer));

        let refusals = [Some(by_account), by_network]
            .into_iter()
            .flatten()
            .filter(|(admitted, _)| *admitted == 0)
            .map(|(_, ms)| Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
        let Some(wait) = refusals.max() else {
            return Ok(ThrottleVerdict::Allow);
        };
        // The attempt is refused: give back whichever counter admitted it. A failure to give
        // it back leaves the count higher (stricter), never turns the refusal into an
        // admission.
        let given_back = async {
            if by_account.0 == 1 {
                self.undo_account(account, lock_before).await?;
            }
            if let (Some(ip), Some((1, _))) = (ip, by_network) {
                self.release_network(ip).await?;
            }
            Ok::<_, PortError>(())
        };
        if let Err(error) = given_back.await {
            tracing::warn!(%error, "could not give back the count of a refused login attempt");
        }
        Ok(ThrottleVerdict::Deny {
            retry_after: retry_after(wait),
        })
    }

    /// One run of the network's script on its own key, the one [`admit_redis`](Self::admit_redis)
    /// counts logins under, so reset requests and failed logins fill one cap.
    async fn admit_network_redis(&self, ip: IpAddr) -> Result<ThrottleVerdict, PortError> {
        let args = vec![i64::from(self.ip_cap.limit()), millis(self.ip_cap.window())];
        let reply: Vec<i64> = fail_fast(&self.client)
            .custom(
                eval(),
                script_call(ADMIT_NETWORK, self.network_key(ip), args),
            )
            .await
            .map_err(port_error)?;
        let field = |i: usize| reply.get(i).copied().unwrap_or(0);
        if field(0) == 0 {
            let wait = Duration::from_millis(u64::try_from(field(1)).unwrap_or(0));
            return Ok(ThrottleVerdict::Deny {
                retry_after: retry_after(wait),
            });
        }
        Ok(ThrottleVerdict::Allow)
    }

    async fn release_account(&self, account: &ThrottleKey, how: Release) -> Result<(), PortError> {
        let mode = match how {
            Release::Reset => "reset",
            Release::Withdraw => "withdraw",
        };
        let args = vec![self.backoff.max_failures().to_string(), mode.to_owned()];
        let _: i64 = fail_fast(&self.client)
            .custom(
                eval(),
                script_call(RELEASE_ACCOUNT, self.account_key(account), args),
            )
            .await
            .map_err(port_error)?;
        Ok(())
    }

    async fn undo_account(&self, account: &ThrottleKey, lock_before: i64) -> Result<(), PortError> {
        let args = vec![i64::from(self.backoff.max_failures()), lock_before];
        let _: i64 = fail_fast(&self.client)
            .custom(
                eval(),
                script_call(UNDO_ACCOUNT, self.account_key(account), args),
            )
            .await
            .map_err(port_error)?;
        Ok(())
    }

    async fn release_network(&self, ip: IpAddr) -> Result<(), PortError> {
        let _: i64 = fail_fast(&self.client)
            .custom(
                eval(),
                script_call(RELEASE_NETWORK, self.network_key(ip), Vec::<String>::new()),
            )
            .await
            .map_err(port_error)?;
        Ok(())
    }

    async fn release_redis(
        &self,
        account: &ThrottleKey,
        ip: Option<IpAddr>,
        how: Release,
    ) -> Result<(), PortError> {
        self.release_account(account, how).await?;
        if let Some(ip) = ip {
            self.release_network(ip).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl LoginThrottle for RedisLoginThrottle {
    async fn admit(
        &self,
        account: &ThrottleKey,
        ip: Option<IpAddr>,
    ) -> Result<ThrottleVerdict, PortError> {
        self.admit_redis(account, ip).await
    }

    async fn succeeded(&self, account: &ThrottleKey, ip: Option<IpAddr>) -> Result<(), PortError> {
        self.release_redis(account, ip, Release::Reset).await
    }

    async fn admit_network(&self, ip: IpAddr) -> Result<ThrottleVerdict, PortError> {
        self.admit_network_redis(ip).await
    }

    async fn withdraw(&self, account: &ThrottleKey, ip: Option<IpAddr>) -> Result<(), PortError> {
        self.release_redis(account, ip, Release::Withdraw).await
    }
}

/// `EVAL`, routed on a cluster by its one key (the third argument).
fn eval() -> CustomCommand {
    CustomCommand::new_static("EVAL", ClusterHash::Offset(2), false)
}

/// The arguments of `EVAL script 1 key args...`. `EVAL` rather than a loaded script: Redis
/// caches the compiled script by its hash anyway, and nothing has to be reloaded after a
/// restart or failover.
fn script_call(script: &str, key: String, args: Vec<impl ToString>) -> Vec<String> {
    [script.to_owned(), "1".to_owned(), key]
        .into_iter()
        .chain(args.iter().map(ToString::to_string))
        .collect()
}

/// A duration in whole milliseconds, at least one, as `PX`/`PEXPIRE` want it.
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}
