//! One constructor per use case, from the set of [`Ports`]: `authd` and the benchmarks build the
//! use cases the same way. (Tests build them field by field, with mocks.)

use std::time::Duration;

use crate::AuthSettings;
use crate::ports::Ports;
use crate::use_cases::{
    Authenticate, Bootstrap, ChangePassword, CheckReadiness, ConfirmPasswordReset, CreateRole,
    CreateUser, DeleteRole, DeleteUser, DeliverEmails, DeliverySettings, GetUser, ListRoles,
    ListSessions, ListUserSessions, ListUsers, LogIn, LogOut, LogOutEverywhere, PurgeSessions,
    Refresh, RequestPasswordReset, ResendVerification, RevokeSession, RevokeUserSessions, SignUp,
    UpdateRole, UpdateUser, VerifyEmail,
};

impl SignUp {
    /// Signs up on these ports.
    pub fn new(ports: &Ports, settings: &AuthSettings) -> Self {
        Self {
            users: ports.store.users.clone(),
            roles: ports.store.roles.clone(),
            hasher: ports.hasher.clone(),
            tokens: ports.link_tokens.clone(),
            clock: ports.clock.clone(),
            settings: settings.clone(),
        }
    }
}

impl RequestPasswordReset {
    /// Takes reset requests on these ports.
    pub fn new(ports: &Ports, settings: &AuthSettings) -> Self {
        Self {
            throttle: ports.cache.throttle.clone(),
            links: ports.store.links.clone(),
            tokens: ports.link_tokens.clone(),
            clock: ports.clock.clone(),
            settings: settings.clone(),
        }
    }
}

impl ConfirmPasswordReset {
    /// Completes resets on these ports.
    pub fn new(ports: &Ports) -> Self {
        Self {
            links: ports.store.links.clone(),
            tokens: ports.link_tokens.clone(),
            hasher: ports.hasher.clone(),
            sessions: ports.store.sessions.clone(),
            cache: ports.cache.auth.clone(),
            throttle: ports.cache.throttle.clone(),
            clock: ports.clock.clone(),
        }
    }
}

impl VerifyEmail {
    /// Verifies addresses on these ports.
    pub fn new(ports: &Ports) -> Self {
        Self {
            links: ports.store.links.clone(),
            tokens: ports.link_tokens.clone(),
            cache: ports.cache.auth.clone(),
            clock: ports.clock.clone(),
        }
    }
}

impl ResendVerification {
    /// Resends verification links on these ports.
    pub fn new(ports: &Ports, settings: &AuthSettings) -> Self {
        Self {
            links: ports.store.links.clone(),
            tokens: ports.link_tokens.clone(),
            clock: ports.clock.clone(),
            settings: settings.clone(),
        }
    }
}

impl DeliverEmails {
    /// Delivers the outbox on these ports.
    pub fn new(ports: &Ports, settings: DeliverySettings) -> Self {
        Self {
            outbox: ports.store.outbox.clone(),
            links: ports.store.links.clone(),
            tokens: ports.link_tokens.clone(),
            templates: ports.mail.templates.clone(),
            mailer: ports.mail.mailer.clone(),
            clock: ports.clock.clone(),
            settings,
        }
    }
}

impl LogIn {
    /// Logs in on these ports.
    pub fn new(ports: &Ports, settings: &AuthSettings) -> Self {
        Self {
            users: ports.store.users.clone(),
            sessions: ports.store.sessions.clone(),
            cache: ports.cache.auth.clone(),
            throttle: ports.cache.throttle.clone(),
            hasher: ports.hasher.clone(),
            issuer: ports.issuer.clone(),
            verifier: ports.verifier.clone(),
            clock: ports.clock.clone(),
            settings: settings.clone(),
        }
    }
}

impl Refresh {
    /// Refreshes on these ports.
    pub fn new(ports: &Ports, settings: &AuthSettings) -> Self {
        Self {
            users: ports.store.users.clone(),
            sessions: ports.store.sessions.clone(),
            cache: ports.cache.auth.clone(),
            issuer: ports.issuer.clone(),
            verifier: ports.verifier.clone(),
            clock: ports.clock.clone(),
            settings: settings.clone(),
        }
    }
}

impl LogOut {
    /// Logs out on these ports.
    pub fn new(ports: &Ports) -> Self {
        Self {
            verifier: ports.verifier.clone(),
            sessions: ports.store.sessions.clone(),
            cache: ports.cache.auth.clone(),
            clock: ports.clock.clone(),
        }
    }
}

impl LogOutEverywhere {
    /// Logs out everywhere on these ports.
    pub fn new(ports: &Ports) -> Self {
        Self {
            sessions: ports.store.sessions.clone(),
            cache: ports.cache.auth.clone(),
            clock: ports.clock.clone(),
        }
    }
}

impl ChangePassword {
    /// Changes passwords on these ports.
    pub fn new(ports: &Ports, settings: &AuthSettings) -> Self {
        Self {
            users: ports.store.users.clone(),
            sessions: ports.store.sessions.clone(),
            cache: ports.cache.auth.clone(),
            throttle: ports.cache.throttle.clone(),
            hasher: ports.hasher.clone(),
            clock: ports.clock.clone(),
            settings: settings.clone(),
        }
    }
}

impl Authenticate {
    /// Authenticates on these ports.
    pub fn new(ports: &Ports) -> Self {
        Self {
            verifier: ports.verifier.clone(),
            users: ports.store.users.clone(),
            sessions: ports.store.sessions.clone(),
            cache: ports.cache.auth.clone(),
            clock: ports.clock.clone(),
        }
    }
}

impl ListSessions {
    /// Lists sessions on these ports.
    pub fn new(ports: &Ports) -> Self {
        Self {
            sessions: ports.store.sessions.clone(),
            clock: ports.clock.clone(),
        }
    }
}

impl RevokeSession {
    /// Revokes sessions on these ports.
    pub fn new(ports: &Ports) -> Self {
        Self {
            sessions: ports.store.sessions.clone(),
            cache: ports.cache.auth.clone(),
            clock: ports.clock.clone(),
        }
    }
}

impl PurgeSessions {
    /// Purges on these ports; see the fields for the graces and the batch.
    pub fn new(
        ports: &Ports,
        revoked_grace: Duration,
        refresh_grace: Duration,
        batch: u32,
    ) -> Self {
        Self {
            sessions: ports.store.sessions.clone(),
            clock: ports.clock.clone(),
            revoked_grace,
            refresh_grace,
            batch,
        }
    }
}

impl ListUsers {
    /// Lists users on these ports.
    pub fn new(ports: &Ports) -> Self {
        Self {
            users: ports.store.users.clone(),
        }
    }
}

impl GetUser {
    /// Reads users on these ports.
    pub fn new(ports: &Ports) -> Self {
        Self {
            users: ports.store.users.clone(),
        }
    }
}

impl CreateUser {
    /// Creates users on these ports.
    pub fn new(ports: &Ports, settings: &AuthSettings) -> Self {
        Self {
            users: ports.store.users.clone(),
            roles: ports.store.roles.clone(),
            hasher: ports.hasher.clone(),
            clock: ports.clock.clone(),
            settings: settings.clone(),
        }
    }
}

impl UpdateUser {
    /// Updates users on these ports.
    pub fn new(ports: &Ports, settings: &AuthSettings) -> Self {
        Self {
            users: ports.store.users.clone(),
            roles: ports.store.roles.clone(),
            sessions: ports.store.sessions.clone(),
            cache: ports.cache.auth.clone(),
            hasher: ports.hasher.clone(),
            clock: ports.clock.clone(),
            settings: settings.clone(),
        }
    }
}

impl DeleteUser {
    /// Deletes users on these ports.
    pub fn new(ports: &Ports) -> Self {
        Self {
            users: ports.store.users.clone(),
            sessions: ports.store.sessions.clone(),
            cache: ports.cache.auth.clone(),
            clock: ports.clock.clone(),
        }
    }
}

impl ListUserSessions {
    /// Lists a user's sessions on these ports.
    pub fn new(ports: &Ports) -> Self {
        Self {
            users: ports.store.users.clone(),
            sessions: ports.store.sessions.clone(),
            clock: ports.clock.clone(),
        }
    }
}

impl RevokeUserSessions {
    /// Revokes a user's sessions on these ports.
    pub fn new(ports: &Ports) -> Self {
        Self {
            users: ports.store.users.clone(),
            sessions: ports.store.sessions.clone(),
            cache: ports.cache.auth.clone(),
            clock: ports.clock.clone(),
        }
    }
}

impl CheckReadiness {
    /// Probes the store and the cache of these ports.
    pub fn new(ports: &Ports) -> Self {
        Self {
            database: ports.store.probe.clone(),
            cache: ports.cache.probe.clone(),
        }
    }
}

impl ListRoles {
    /// Lists roles on these ports.
    pub fn new(ports: &Ports) -> Self {
        Self {
            roles: ports.store.roles.clone(),
        }
    }
}

impl CreateRole {
    /// Creates roles on these ports.
    pub fn new(ports: &Ports) -> Self {
        Self {
            roles: ports.store.roles.clone(),
            clock: ports.clock.clone(),
        }
    }
}

impl UpdateRole {
    /// Updates roles on these ports.
    pub fn new(ports: &Ports) -> Self {
        Self {
            roles: ports.store.roles.clone(),
            clock: ports.clock.clone(),
        }
    }
}

impl DeleteRole {
    /// Deletes roles on these ports, never the default role of `settings`.
    pub fn new(ports: &Ports, settings: &AuthSettings) -> Self {
        Self {
            roles: ports.store.roles.clone(),
            default_role: settings.default_role.clone(),
        }
    }
}

impl Bootstrap {
    /// Bootstraps on these ports.
    pub fn new(ports: &Ports, settings: &AuthSettings) -> Self {
        Self {
            users: ports.store.users.clone(),
            roles: ports.store.roles.clone(),
            hasher: ports.hasher.clone(),
            clock: ports.clock.clone(),
            settings: settings.clone(),
        }
    }
}
