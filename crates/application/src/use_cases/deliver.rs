//! Delivery of the outbox: every instance runs [`DeliverEmails`] now and then.

use std::sync::Arc;
use std::time::Duration;

use authd_domain::{DeliveryRetry, EmailKind, LinkTemplate};
use chrono::{DateTime, TimeDelta, Utc};

use crate::PortError;
use crate::ports::{
    Clock, EmailMessage, EmailTemplates, LinkTokenRepository, LinkTokens, MailError, Mailer,
    Outbox, OutboxEmail, OutboxStats,
};

/// How the outbox is delivered.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Where verification links point.
    pub verify_link: LinkTemplate,
    /// Where reset links point.
    pub reset_link: LinkTemplate,
    /// When a failed email is tried again, and when it is given up.
    pub retry: DeliveryRetry,
    /// How long a claimed email is kept from other instances: longer than one send may take
    /// (the mailer's timeouts), so no two instances send it at once.
    pub lease: Duration,
    /// The most emails one run sends.
    pub batch: u32,
    /// How long sent and dead emails (and spent tokens) are kept before the purge.
    pub retention: Duration,
}

/// What one run did, by kind of email.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Handed to the mail server.
    pub sent: Vec<EmailKind>,
    /// Refused or timed out; tried again later.
    pub failed: Vec<EmailKind>,
    /// Failed for the last time, or undeliverable: given up.
    pub dead: Vec<EmailKind>,
}

/// Sends what the outbox holds: claims one due email at a time, renders it (the link's token
/// is unsealed only now), hands it to the mailer, and records the outcome. A failure is tried
/// again with exponential back-off, then given up and logged.
pub struct DeliverEmails {
    pub outbox: Arc<dyn Outbox>,
    pub links: Arc<dyn LinkTokenRepository>,
    pub tokens: Arc<dyn LinkTokens>,
    pub templates: Arc<dyn EmailTemplates>,
    pub mailer: Arc<dyn Mailer>,
    pub clock: Arc<dyn Clock>,
    pub settings: DeliverySettings,
}

/// Why one email did not go out.
enum Undelivered {
    /// Worth another try (the mail server refused, hung up or timed out).
    Transient(MailError),
    /// Never deliverable (its token cannot be unsealed, its template fails): given up now.
    Permanent(String),
}

impl DeliverEmails {
    /// Delivers at most `batch` due emails. Fails only when the outbox itself cannot be read
    /// or written; the emails of this run keep their state then and are due again later.
    pub async fn execute(&self) -> Result<DeliveryReport, PortError> {
        let mut report = DeliveryReport::default();
        for _ in 0..self.settings.batch {
            let now = self.clock.now();
            let Some(email) = self
                .outbox
                .claim(now, self.settings.lease, 1)
                .await?
                .into_iter()
                .next()
            else {
                break;
            };
            match self.deliver(&email).await {
                Ok(()) => {
                    self.outbox.sent(email.id, self.clock.now()).await?;
                    report.sent.push(email.kind);
                }
                Err(Undelivered::Transient(error)) => {
                    let now = self.clock.now();
                    let retry_at = self
                        .settings
                        .retry
                        .after(email.attempts)
                        .map(|wait| later(now, wait));
                    self.outbox
                        .failed(email.id, &error.0, retry_at, now)
                        .await?;
                    if retry_at.is_some() {
                        tracing::warn!(id = %email.id, kind = %email.kind, attempts = email.attempts, %error, "email not delivered; trying again later");
                        report.failed.push(email.kind);
                    } else {
                        tracing::error!(id = %email.id, kind = %email.kind, attempts = email.attempts, %error, "email given up after its last attempt");
                        report.dead.push(email.kind);
                    }
                }
                Err(Undelivered::Permanent(error)) => {
                    self.outbox
                        .failed(email.id, &error, None, self.clock.now())
                        .await?;
                    tracing::error!(id = %email.id, kind = %email.kind, %error, "email cannot be delivered; given up");
                    report.dead.push(email.kind);
                }
            }
        }
        Ok(report)
    }

    /// How much waits in the outbox.
    pub async fn stats(&self) -> Result<OutboxStats, PortError> {
        self.outbox.stats().await
    }

    /// Deletes sent and dead emails, and tokens past their use, older than the retention
    /// period, a batch at a time; returns how many rows went.
    pub async fn purge(&self, batch: u32) -> Result<u64, PortError> {
        // A zero batch deletes nothing and is never short: the loop would not end.
        let batch = batch.max(1);
        let before = self
            .clock
            .now()
            .checked_sub_signed(delta(self.settings.retention))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let mut purged = 0;
        loop {
            let emails = self.outbox.purge(before, batch).await?;
            let tokens = self.links.purge(before, batch).await?;
            purged += emails + tokens;
            if emails < u64::from(batch) && tokens < u64::from(batch) {
                return Ok(purged);
            }
        }
    }

    async fn deliver(&self, email: &OutboxEmail) -> Result<(), Undelivered> {
        let message = self.compose(email).map_err(Undelivered::Permanent)?;
        self.mailer
            .send(&message)
            .await
            .map_err(Undelivered::Transient)
    }

    fn compose(&self, email: &OutboxEmail) -> Result<EmailMessage, String> {
        let link = match (email.kind, &email.sealed_token) {
            (EmailKind::PasswordChanged, _) => None,
            (kind, Some(sealed)) => {
                let token = self
                    .tokens
                    .open(sealed)
                    .ok_or("its token cannot be unsealed (was the signing key replaced?)")?;
                let template = match kind {
                    EmailKind::ResetPassword => &self.settings.reset_link,
                    _ => &self.settings.verify_link,
                };
                Some(template.link(&token))
            }
            (_, None) => return Err("a link email without a token".to_owned()),
        };
        self.templates
            .render(email.kind, &email.recipient, link.as_deref())
            .map_err(|error| format!("its template does not render: {error}"))
    }
}

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

/// `wait` after `now`, or the end of time (a back-off cannot overflow the clock).
fn later(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    now.checked_add_signed(delta(wait))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::Dependency;
    use crate::ports::{
        MockEmailTemplates, MockLinkTokenRepository, MockLinkTokens, MockMailer, MockOutbox,
    };
    use crate::use_cases::fixtures::*;
    use authd_domain::{EmailId, LinkToken};
    use mockall::predicate::eq;

    const VERIFY: &str = "https://app.example/verify?token={token}";
    const RESET: &str = "https://app.example/reset?token={token}";
    const LEASE: Duration = Duration::from_secs(120);
    const RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

    fn delivery_settings() -> DeliverySettings {
        DeliverySettings {
            verify_link: LinkTemplate::parse(VERIFY).unwrap(),
            reset_link: LinkTemplate::parse(RESET).unwrap(),
            retry: DeliveryRetry::new(Duration::from_secs(30), Duration::from_secs(3600), 3),
            lease: LEASE,
            batch: 5,
            retention: RETENTION,
        }
    }

    /// A claimed email of `kind` on its `attempts`-th attempt; link emails carry the sealed
    /// token `sealed-<kind>`.
    fn email(kind: EmailKind, attempts: u32) -> OutboxEmail {
        OutboxEmail {
            id: EmailId::generate(),
            kind,
            recipient: "Ada@Example.com".into(),
            sealed_token: kind.has_link().then(|| format!("sealed-{kind}")),
            attempts,
            created_at: now(),
        }
    }

    fn message(kind: EmailKind, link: Option<&str>) -> EmailMessage {
        EmailMessage {
            to: "Ada@Example.com".into(),
            subject: kind.as_str().into(),
            text: link.unwrap_or("no link").into(),
            html: "<p>html</p>".into(),
        }
    }

    struct Mocks {
        outbox: MockOutbox,
        links: MockLinkTokenRepository,
        tokens: MockLinkTokens,
        templates: MockEmailTemplates,
        mailer: MockMailer,
    }

    impl Mocks {
        /// An outbox whose claims (each at `now`, for the lease, one email) hand out `emails`
        /// one by one, then nothing; the other ports expect nothing.
        fn claiming(emails: Vec<OutboxEmail>) -> Self {
            let mut mocks = Self::bare();
            let claims = emails.len() + 1;
            let mut queue = VecDeque::from(emails);
            mocks
                .outbox
                .expect_claim()
                .with(eq(now()), eq(LEASE), eq(1))
                .times(claims)
                .returning(move |_, _, _| Ok(queue.pop_front().into_iter().collect()));
            mocks
        }

        fn bare() -> Self {
            Self {
                outbox: MockOutbox::new(),
                links: MockLinkTokenRepository::new(),
                tokens: MockLinkTokens::new(),
                templates: MockEmailTemplates::new(),
                mailer: MockMailer::new(),
            }
        }

        /// Templates that render any email of `kind` with `link` into [`message`].
        fn rendering(mut self, kind: EmailKind, link: Option<String>) -> Self {
            let expected = link.clone();
            self.templates
                .expect_render()
                .withf(move |given, to, link| {
                    *given == kind
                        && to == "Ada@Example.com"
                        && link.as_deref() == expected.as_deref()
                })
                .times(1)
                .returning(move |kind, _, link| Ok(message(kind, link)));
            self
        }

        /// A mailer that takes the message of `kind` with `link` and answers `outcome`.
        fn mailing(
            mut self,
            kind: EmailKind,
            link: Option<&str>,
            outcome: Result<(), MailError>,
        ) -> Self {
            let expected = message(kind, link);
            self.mailer
                .expect_send()
                .with(eq(expected))
                .times(1)
                .returning(move |_| outcome.clone());
            self
        }

        /// The link tokens open `sealed-<kind>` into a token of `c`s.
        fn opening(mut self, kind: EmailKind, c: char) -> Self {
            self.tokens
                .expect_open()
                .with(eq(format!("sealed-{kind}")))
                .times(1)
                .returning(move |_| Some(link_token(c)));
            self
        }

        /// The outbox records `id` as given up, with an error starting with `error`.
        fn giving_up(mut self, id: EmailId, error: &'static str) -> Self {
            self.outbox
                .expect_failed()
                .withf(move |given, text, retry_at, at| {
                    *given == id && text.starts_with(error) && retry_at.is_none() && *at == now()
                })
                .times(1)
                .returning(|_, _, _, _| Ok(()));
            self.outbox.expect_sent().never();
            self
        }

        fn build(self) -> DeliverEmails {
            DeliverEmails {
                outbox: Arc::new(self.outbox),
                links: Arc::new(self.links),
                tokens: Arc::new(self.tokens),
                templates: Arc::new(self.templates),
                mailer: Arc::new(self.mailer),
                clock: fixed_clock(),
                settings: delivery_settings(),
            }
        }
    }

    fn link(template: &str, c: char) -> String {
        template.replace("{token}", &c.to_string().repeat(LinkToken::LEN))
    }

    #[tokio::test]
    async fn a_notice_is_rendered_without_a_link_sent_and_recorded() {
        let notice = email(EmailKind::PasswordChanged, 1);
        let id = notice.id;
        let mut mocks = Mocks::claiming(vec![notice])
            .rendering(EmailKind::PasswordChanged, None)
            .mailing(EmailKind::PasswordChanged, None, Ok(()));
        mocks.tokens.expect_open().never();
        mocks
            .outbox
            .expect_sent()
            .with(eq(id), eq(now()))
            .times(1)
            .returning(|_, _| Ok(()));
        mocks.outbox.expect_failed().never();
        let report = mocks.build().execute().await.unwrap();
        assert_eq!(
            report,
            DeliveryReport {
                sent: vec![EmailKind::PasswordChanged],
                ..Default::default()
            }
        );
    }

    #[tokio::test]
    async fn a_link_email_unseals_its_token_into_the_link_of_its_own_template() {
        for (kind, template) in [
            (EmailKind::ResetPassword, RESET),
            (EmailKind::VerifyEmail, VERIFY),
        ] {
            let queued = email(kind, 1);
            let id = queued.id;
            let expected = link(template, 'k');
            let mut mocks = Mocks::claiming(vec![queued])
                .opening(kind, 'k')
                .rendering(kind, Some(expected.clone()))
                .mailing(kind, Some(&expected), Ok(()));
            mocks
                .outbox
                .expect_sent()
                .with(eq(id), eq(now()))
                .times(1)
                .returning(|_, _| Ok(()));
            let report = mocks.build().execute().await.unwrap();
            assert_eq!(report.sent, vec![kind]);
            assert!(report.failed.is_empty() && report.dead.is_empty());
        }
    }

    #[tokio::test]
    async fn a_refused_email_is_tried_again_after_the_back_off_of_its_attempt() {
        for (attempts, wait) in [(1, 30), (2, 60)] {
            let queued = email(EmailKind::PasswordChanged, attempts);
            let id = queued.id;
            let mut mocks = Mocks::claiming(vec![queued])
                .rendering(EmailKind::PasswordChanged, None)
                .mailing(
                    EmailKind::PasswordChanged,
                    None,
                    Err(MailError("421 try later".into())),
                );
            let retry_at = now() + TimeDelta::seconds(wait);
            mocks
                .outbox
                .expect_failed()
                .withf(move |given, error, at, when| {
                    *given == id
                        && error == "421 try later"
                        && *at == Some(retry_at)
                        && *when == now()
                })
                .times(1)
                .returning(|_, _, _, _| Ok(()));
            mocks.outbox.expect_sent().never();
            let report = mocks.build().execute().await.unwrap();
            assert_eq!(
                report,
                DeliveryReport {
                    failed: vec![EmailKind::PasswordChanged],
                    ..Default::default()
                }
            );
        }
    }

    #[tokio::test]
    async fn a_refusal_on_the_last_attempt_gives_the_email_up() {
        let queued = email(EmailKind::ResetPassword, 3);
        let id = queued.id;
        let expected = link(RESET, 'k');
        let mocks = Mocks::claiming(vec![queued])
            .opening(EmailKind::ResetPassword, 'k')
            .rendering(EmailKind::ResetPassword, Some(expected.clone()))
            .mailing(
                EmailKind::ResetPassword,
                Some(&expected),
                Err(MailError("550 no such mailbox".into())),
            )
            .giving_up(id, "550 no such mailbox");
        let report = mocks.build().execute().await.unwrap();
        assert_eq!(
            report,
            DeliveryReport {
                dead: vec![EmailKind::ResetPassword],
                ..Default::default()
            }
        );
    }

    #[tokio::test]
    async fn a_token_that_cannot_be_unsealed_is_given_up_without_mailing() {
        let queued = email(EmailKind::VerifyEmail, 1);
        let id = queued.id;
        let mut mocks = Mocks::claiming(vec![queued]).giving_up(id, "its token cannot be unsealed");
        mocks
            .tokens
            .expect_open()
            .with(eq("sealed-verify_email".to_owned()))
            .times(1)
            .returning(|_| None);
        mocks.templates.expect_render().never();
        mocks.mailer.expect_send().never();
        let report = mocks.build().execute().await.unwrap();
        assert_eq!(report.dead, vec![EmailKind::VerifyEmail]);
        assert!(report.sent.is_empty() && report.failed.is_empty());
    }

    #[tokio::test]
    async fn a_link_email_without_its_token_is_given_up_without_mailing() {
        let mut queued = email(EmailKind::ResetPassword, 1);
        queued.sealed_token = None;
        let id = queued.id;
        let mut mocks = Mocks::claiming(vec![queued]).giving_up(id, "a link email without a token");
        mocks.tokens.expect_open().never();
        mocks.templates.expect_render().never();
        mocks.mailer.expect_send().never();
        let report = mocks.build().execute().await.unwrap();
        assert_eq!(report.dead, vec![EmailKind::ResetPassword]);
    }

    #[tokio::test]
    async fn a_template_that_does_not_render_gives_the_email_up_without_mailing() {
        let queued = email(EmailKind::PasswordChanged, 1);
        let id = queued.id;
        let mut mocks = Mocks::claiming(vec![queued]).giving_up(id, "its template does not render");
        mocks
            .templates
            .expect_render()
            .times(1)
            .returning(|_, _, _| Err(PortError::Unexpected(anyhow::anyhow!("unclosed tag"))));
        mocks.mailer.expect_send().never();
        let report = mocks.build().execute().await.unwrap();
        assert_eq!(report.dead, vec![EmailKind::PasswordChanged]);
    }

    #[tokio::test]
    async fn an_outbox_that_cannot_be_claimed_from_fails_the_run() {
        let mut mocks = Mocks::bare();
        mocks
            .outbox
            .expect_claim()
            .times(1)
            .returning(|_, _, _| Err(PortError::Unavailable(Dependency::Database)));
        mocks.mailer.expect_send().never();
        let error = mocks.build().execute().await.unwrap_err();
        assert!(matches!(
            error,
            PortError::Unavailable(Dependency::Database)
        ));
    }

    #[tokio::test]
    async fn an_outcome_that_cannot_be_recorded_fails_the_run() {
        let mut mocks = Mocks::bare();
        mocks
            .outbox
            .expect_claim()
            .times(1)
            .returning(|_, _, _| Ok(vec![email(EmailKind::PasswordChanged, 1)]));
        let mut mocks = mocks.rendering(EmailKind::PasswordChanged, None).mailing(
            EmailKind::PasswordChanged,
            None,
            Ok(()),
        );
        mocks
            .outbox
            .expect_sent()
            .times(1)
            .returning(|_, _| Err(PortError::Unavailable(Dependency::Database)));
        let error = mocks.build().execute().await.unwrap_err();
        assert!(matches!(
            error,
            PortError::Unavailable(Dependency::Database)
        ));
    }

    #[tokio::test]
    async fn one_run_sends_at_most_a_batch() {
        let mut mocks = Mocks::bare();
        mocks
            .outbox
            .expect_claim()
            .with(eq(now()), eq(LEASE), eq(1))
            .times(5)
            .returning(|_, _, _| Ok(vec![email(EmailKind::PasswordChanged, 1)]));
        mocks
            .templates
            .expect_render()
            .times(5)
            .returning(|kind, _, link| Ok(message(kind, link)));
        mocks.mailer.expect_send().times(5).returning(|_| Ok(()));
        mocks.outbox.expect_sent().times(5).returning(|_, _| Ok(()));
        let report = mocks.build().execute().await.unwrap();
        assert_eq!(report.sent, vec![EmailKind::PasswordChanged; 5]);
    }

    #[tokio::test]
    async fn an_empty_outbox_is_a_quiet_run() {
        let mut mocks = Mocks::claiming(Vec::new());
        mocks.mailer.expect_send().never();
        let report = mocks.build().execute().await.unwrap();
        assert_eq!(report, DeliveryReport::default());
    }

    /// Whether a purge call deletes rows older than the retention, `batch` at most.
    fn purging(batch: u32) -> impl Fn(&DateTime<Utc>, &u32) -> bool + Send + 'static {
        move |before, given| *before == now() - TimeDelta::days(7) && *given == batch
    }

    #[tokio::test]
    async fn the_purge_runs_until_both_tables_come_back_short() {
        let mut mocks = Mocks::bare();
        let mut emails = VecDeque::from([10, 3, 0]);
        mocks
            .outbox
            .expect_purge()
            .withf(purging(10))
            .times(3)
            .returning(move |_, _| Ok(emails.pop_front().unwrap()));
        let mut tokens = VecDeque::from([2, 10, 4]);
        mocks
            .links
            .expect_purge()
            .withf(purging(10))
            .times(3)
            .returning(move |_, _| Ok(tokens.pop_front().unwrap()));
        assert_eq!(mocks.build().purge(10).await.unwrap(), 29);
    }

    #[tokio::test]
    async fn a_zero_batch_purge_still_ends() {
        let mut mocks = Mocks::bare();
        mocks
            .outbox
            .expect_purge()
            .withf(purging(1))
            .times(1)
            .returning(|_, _| Ok(0));
        mocks
            .links
            .expect_purge()
            .withf(purging(1))
            .times(1)
            .returning(|_, _| Ok(0));
        assert_eq!(mocks.build().purge(0).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_failed_purge_is_an_error() {
        let mut mocks = Mocks::bare();
        mocks
            .outbox
            .expect_purge()
            .times(1)
            .returning(|_, _| Err(PortError::Unavailable(Dependency::Database)));
        mocks.links.expect_purge().never();
        assert!(mocks.build().purge(10).await.is_err());
    }

    #[tokio::test]
    async fn stats_are_the_outbox_stats() {
        let mut mocks = Mocks::bare();
        let stats = OutboxStats {
            depth: 4,
            oldest: Some(now()),
        };
        mocks
            .outbox
            .expect_stats()
            .times(1)
            .returning(move || Ok(stats));
        assert_eq!(mocks.build().stats().await.unwrap(), stats);
    }
}
