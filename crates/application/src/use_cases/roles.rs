use std::sync::Arc;

use authd_domain::{Role, RoleId, RoleSlug};

use crate::PortError;
use crate::commands;
use crate::ports::{self, Clock, RoleChanges, RoleDeletion, RoleRepository};
use crate::use_cases::Principal;
use crate::use_cases::admin::{not_superuser, require_superuser};

/// Why listing the roles failed.
#[derive(Debug, thiserror::Error)]
pub enum ListRolesError {
    /// The caller is not a superuser.
    #[error("the caller is not a superuser")]
    NotSuperuser,
    /// A dependency failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why creating a role failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateRoleError {
    /// The caller is not a superuser.
    #[error("the caller is not a superuser")]
    NotSuperuser,
    /// A role with this slug exists.
    #[error("the slug is taken")]
    SlugTaken,
    /// A dependency failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why updating a role failed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateRoleError {
    /// The caller is not a superuser.
    #[error("the caller is not a superuser")]
    NotSuperuser,
    /// There is no such role.
    #[error("no such role")]
    NotFound,
    /// A dependency failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why deleting a role failed.
#[derive(Debug, thiserror::Error)]
pub enum DeleteRoleError {
    /// The caller is not a superuser.
    #[error("the caller is not a superuser")]
    NotSuperuser,
    /// There is no such role.
    #[error("no such role")]
    NotFound,
    /// It is the default role, which signups are given.
    #[error("the default role cannot be deleted")]
    DefaultRoleProtected,
    /// Users still hold it.
    #[error("users hold the role")]
    RoleInUse,
    /// A dependency failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

not_superuser!(
    ListRolesError,
    CreateRoleError,
    UpdateRoleError,
    DeleteRoleError
);

/// Lists every role.
pub struct ListRoles {
    pub roles: Arc<dyn RoleRepository>,
}

impl ListRoles {
    /// Every role, oldest first.
    pub async fn execute(&self, principal: &Principal) -> Result<Vec<Role>, ListRolesError> {
        require_superuser(principal)?;
        Ok(self.roles.list().await?)
    }
}

/// Creates a role.
pub struct CreateRole {
    pub roles: Arc<dyn RoleRepository>,
    pub clock: Arc<dyn Clock>,
}

impl CreateRole {
    /// Creates the role; its slug must be free.
    pub async fn execute(
        &self,
        principal: &Principal,
        command: commands::CreateRole,
    ) -> Result<Role, CreateRoleError> {
        require_superuser(principal)?;
        let now = self.clock.now();
        let role = Role {
            id: RoleId::generate(),
            slug: command.slug,
            name: command.name,
            description: command.description,
            created_at: now,
            updated_at: now,
        };
        self.roles
            .create(&role)
            .await
            .map_err(|error| match error {
                ports::CreateRoleError::SlugTaken => CreateRoleError::SlugTaken,
                ports::CreateRoleError::Port(error) => error.into(),
            })?;
        Ok(role)
    }
}

/// Renames or re-describes a role (its slug never changes).
pub struct UpdateRole {
    pub roles: Arc<dyn RoleRepository>,
    pub clock: Arc<dyn Clock>,
}

impl UpdateRole {
    /// Applies the update.
    pub async fn execute(
        &self,
        principal: &Principal,
        id: RoleId,
        command: commands::UpdateRole,
    ) -> Result<Role, UpdateRoleError> {
        require_superuser(principal)?;
        let changes = RoleChanges {
            name: command.name,
            description: command.description.into_change(),
        };
        self.roles
            .update(id, &changes, self.clock.now())
            .await?
            .ok_or(UpdateRoleError::NotFound)
    }
}

/// Deletes a role nobody holds and that is not the default role.
pub struct DeleteRole {
    pub roles: Arc<dyn RoleRepository>,
    pub default_role: RoleSlug,
}

impl DeleteRole {
    /// Deletes the role.
    pub async fn execute(&self, principal: &Principal, id: RoleId) -> Result<(), DeleteRoleError> {
        require_superuser(principal)?;
        let role = self
            .roles
            .find(id)
            .await?
            .ok_or(DeleteRoleError::NotFound)?;
        if role.slug == self.default_role {
            return Err(DeleteRoleError::DefaultRoleProtected);
        }
        match self.roles.delete(id).await? {
            RoleDeletion::Deleted => Ok(()),
            RoleDeletion::NotFound => Err(DeleteRoleError::NotFound),
            RoleDeletion::InUse => Err(DeleteRoleError::RoleInUse),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dependency;
    use crate::PortError;
    use crate::commands::Patch;
    use crate::ports::CreateRoleError as SlugTaken;
    use crate::ports::MockRoleRepository;
    use crate::use_cases::fixtures::*;
    use authd_domain::{RoleDescription, RoleName, SessionId};

    fn member() -> Principal {
        Principal {
            user: user(),
            session_id: SessionId::generate(),
        }
    }

    fn new_role(slug: &str, name: &str, description: Option<&str>) -> commands::CreateRole {
        commands::CreateRole {
            slug: RoleSlug::parse(slug).unwrap(),
            name: RoleName::parse(name).unwrap(),
            description: description.and_then(|text| RoleDescription::parse(text).unwrap()),
        }
    }

    #[tokio::test]
    async fn only_superusers_may_touch_roles() {
        // No expectations: a non-superuser is turned away before any store call.
        let roles: Arc<dyn RoleRepository> = Arc::new(MockRoleRepository::new());
        let list = ListRoles {
            roles: roles.clone(),
        }
        .execute(&member())
        .await;
        assert!(matches!(list, Err(ListRolesError::NotSuperuser)));
        let create = CreateRole {
            roles: roles.clone(),
            clock: fixed_clock(),
        }
        .execute(&member(), new_role("editors", "Editors", None))
        .await;
        assert!(matches!(create, Err(CreateRoleError::NotSuperuser)));
        let delete = DeleteRole {
            roles,
            default_role: role("application-access").slug,
        }
        .execute(&member(), RoleId::generate())
        .await;
        assert!(matches!(delete, Err(DeleteRoleError::NotSuperuser)));
    }

    #[tokio::test]
    async fn creates_a_role_with_trimmed_text() {
        let mut roles = MockRoleRepository::new();
        roles.expect_create().times(1).returning(|_| Ok(()));
        let new = new_role("editors", "  Editors ", Some(" Edit things "));
        let role = CreateRole {
            roles: Arc::new(roles),
            clock: fixed_clock(),
        }
        .execute(&superuser(), new)
        .await
        .unwrap();
        assert_eq!(
            (
                role.slug.as_str(),
                role.name.as_str(),
                role.description.as_ref().map(RoleDescription::as_str)
            ),
            ("editors", "Editors", Some("Edit things"))
        );
        assert_eq!(role.created_at, now());
    }

    #[tokio::test]
    async fn a_taken_slug_is_its_own_error() {
        let mut roles = MockRoleRepository::new();
        roles
            .expect_create()
            .returning(|_| Err(SlugTaken::SlugTaken));
        let taken = CreateRole {
            roles: Arc::new(roles),
            clock: fixed_clock(),
        }
        .execute(&superuser(), new_role("editors", "Editors", None))
        .await;
        assert!(matches!(taken, Err(CreateRoleError::SlugTaken)));
    }

    #[tokio::test]
    async fn updates_clear_descriptions_and_report_missing_roles() {
        let id = RoleId::generate();
        let mut roles = MockRoleRepository::new();
        roles
            .expect_update()
            .withf(move |role, changes, _| {
                *role == id
                    && changes.name.as_ref().map(RoleName::as_str) == Some("Writers")
                    && changes.description == Some(None)
            })
            .times(1)
            .returning(|_, _, _| Ok(Some(role("editors"))));
        let update = commands::UpdateRole {
            name: Some(RoleName::parse(" Writers ").unwrap()),
            description: Patch::Clear,
        };
        let use_case = UpdateRole {
            roles: Arc::new(roles),
            clock: fixed_clock(),
        };
        assert!(use_case.execute(&superuser(), id, update).await.is_ok());

        let mut roles = MockRoleRepository::new();
        roles
            .expect_update()
            .withf(move |role, _, _| *role == id)
            .returning(|_, _, _| Ok(None));
        let missing = UpdateRole {
            roles: Arc::new(roles),
            clock: fixed_clock(),
        }
        .execute(&superuser(), id, commands::UpdateRole::default())
        .await;
        assert!(matches!(missing, Err(UpdateRoleError::NotFound)));
    }

    #[tokio::test]
    async fn the_default_role_and_held_roles_are_not_deleted() {
        let default = role("application-access");
        let mut roles = MockRoleRepository::new();
        let found = default.clone();
        roles
            .expect_find()
            .returning(move |_| Ok(Some(found.clone())));
        roles.expect_delete().never();
        let use_case = DeleteRole {
            roles: Arc::new(roles),
            default_role: default.slug.clone(),
        };
        assert!(matches!(
            use_case.execute(&superuser(), default.id).await,
            Err(DeleteRoleError::DefaultRoleProtected)
        ));

        for outcome in [
            RoleDeletion::Deleted,
            RoleDeletion::InUse,
            RoleDeletion::NotFound,
        ] {
            let editors = role("editors");
            let id = editors.id;
            let mut roles = MockRoleRepository::new();
            roles
                .expect_find()
                .withf(move |wanted| *wanted == id)
                .returning(move |_| Ok(Some(editors.clone())));
            roles
                .expect_delete()
                .withf(move |deleted| *deleted == id)
                .times(1)
                .returning(move |_| Ok(outcome));
            let result = DeleteRole {
                roles: Arc::new(roles),
                default_role: default.slug.clone(),
            }
            .execute(&superuser(), id)
            .await;
            let reported = match outcome {
                RoleDeletion::Deleted => matches!(result, Ok(())),
                RoleDeletion::InUse => matches!(result, Err(DeleteRoleError::RoleInUse)),
                RoleDeletion::NotFound => matches!(result, Err(DeleteRoleError::NotFound)),
            };
            assert!(reported, "{outcome:?} gave {result:?}");
        }

        let mut roles = MockRoleRepository::new();
        roles
            .expect_find()
            .returning(|_| Err(PortError::Unavailable(Dependency::Database)));
        let down = DeleteRole {
            roles: Arc::new(roles),
            default_role: default.slug,
        }
        .execute(&superuser(), RoleId::generate())
        .await;
        assert!(matches!(down, Err(DeleteRoleError::Port(_))));
    }
}
