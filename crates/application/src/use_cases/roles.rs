use std::sync::Arc;

use authd_domain::{Role, RoleId, RoleSlug};

use crate::FieldError;
use crate::ports::{Clock, CreateRoleError, RoleChanges, RoleDeletion, RoleRepository};
use crate::use_cases::Principal;
use crate::use_cases::admin::{AdminError, require_superuser};

/// Lists every role.
pub struct ListRoles {
    pub roles: Arc<dyn RoleRepository>,
}

impl ListRoles {
    /// Every role, oldest first.
    pub async fn execute(&self, principal: &Principal) -> Result<Vec<Role>, AdminError> {
        require_superuser(principal)?;
        Ok(self.roles.list().await?)
    }
}

/// A role to create.
#[derive(Debug, Clone)]
pub struct NewRole {
    /// Its permanent slug.
    pub slug: String,
    /// Its name.
    pub name: String,
    /// An optional description.
    pub description: Option<String>,
}

/// Creates a role.
pub struct CreateRole {
    pub roles: Arc<dyn RoleRepository>,
    pub clock: Arc<dyn Clock>,
}

impl CreateRole {
    /// Creates the role; its slug must be free.
    pub async fn execute(&self, principal: &Principal, new: NewRole) -> Result<Role, AdminError> {
        require_superuser(principal)?;
        let (slug, name, description) = validate_new(&new).map_err(AdminError::Invalid)?;
        let now = self.clock.now();
        let role = Role {
            id: RoleId::generate(),
            slug,
            name,
            description,
            created_at: now,
            updated_at: now,
        };
        self.roles
            .create(&role)
            .await
            .map_err(|error| match error {
                CreateRoleError::SlugTaken => {
                    AdminError::Conflict("a role with this slug already exists".into())
                }
                CreateRoleError::Port(error) => error.into(),
            })?;
        Ok(role)
    }

    /// The field errors `execute` would report, for a transport that adds its own.
    pub fn field_errors(new: &NewRole) -> Vec<FieldError> {
        validate_new(new).err().unwrap_or_default()
    }
}

fn validate_new(new: &NewRole) -> Result<(RoleSlug, String, Option<String>), Vec<FieldError>> {
    let slug = RoleSlug::parse(&new.slug);
    let name = Role::name_from(&new.name);
    let description = Role::description_from(new.description.as_deref());
    match (slug, name, description) {
        (Ok(slug), Ok(name), Ok(description)) => Ok((slug, name, description)),
        (slug, name, description) => Err([
            slug.err().map(|e| FieldError::new("slug", e)),
            name.err().map(|e| FieldError::new("name", e)),
            description.err().map(|e| FieldError::new("description", e)),
        ]
        .into_iter()
        .flatten()
        .collect()),
    }
}

/// Renames or re-describes a role (its slug never changes).
pub struct UpdateRole {
    pub roles: Arc<dyn RoleRepository>,
    pub clock: Arc<dyn Clock>,
}

/// The fields a role update may set.
#[derive(Debug, Clone, Default)]
pub struct RoleUpdate {
    /// A new name.
    pub name: Option<String>,
    /// A new description; `Some(None)` clears it.
    pub description: Option<Option<String>>,
}

impl UpdateRole {
    /// Applies the update.
    pub async fn execute(
        &self,
        principal: &Principal,
        id: RoleId,
        update: RoleUpdate,
    ) -> Result<Role, AdminError> {
        require_superuser(principal)?;
        let changes = validate_update(&update).map_err(AdminError::Invalid)?;
        self.roles
            .update(id, &changes, self.clock.now())
            .await?
            .ok_or(AdminError::NotFound("role"))
    }

    /// The field errors `execute` would report, for a transport that adds its own.
    pub fn field_errors(update: &RoleUpdate) -> Vec<FieldError> {
        validate_update(update).err().unwrap_or_default()
    }
}

fn validate_update(update: &RoleUpdate) -> Result<RoleChanges, Vec<FieldError>> {
    let name = update.name.as_deref().map(Role::name_from).transpose();
    let description = update
        .description
        .as_ref()
        .map(|description| Role::description_from(description.as_deref()))
        .transpose();
    match (name, description) {
        (Ok(name), Ok(description)) => Ok(RoleChanges { name, description }),
        (name, description) => Err([
            name.err().map(|e| FieldError::new("name", e)),
            description.err().map(|e| FieldError::new("description", e)),
        ]
        .into_iter()
        .flatten()
        .collect()),
    }
}

/// Deletes a role nobody holds and that is not the default role.
pub struct DeleteRole {
    pub roles: Arc<dyn RoleRepository>,
    pub default_role: RoleSlug,
}

impl DeleteRole {
    /// Deletes the role.
    pub async fn execute(&self, principal: &Principal, id: RoleId) -> Result<(), AdminError> {
        require_superuser(principal)?;
        let role = self
            .roles
            .find(id)
            .await?
            .ok_or(AdminError::NotFound("role"))?;
        if role.slug == self.default_role {
            return Err(AdminError::Conflict(
                "the default role cannot be deleted: signups are given it".into(),
            ));
        }
        match self.roles.delete(id).await? {
            RoleDeletion::Deleted => Ok(()),
            RoleDeletion::NotFound => Err(AdminError::NotFound("role")),
            RoleDeletion::InUse => Err(AdminError::Conflict(
                "users still hold this role: give them another one first".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dependency;
    use crate::PortError;
    use crate::ports::MockRoleRepository;
    use crate::use_cases::fixtures::*;
    use authd_domain::SessionId;

    fn member() -> Principal {
        Principal {
            user: user(),
            session_id: SessionId::generate(),
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
        assert!(matches!(list, Err(AdminError::Forbidden(_))));
        let create = CreateRole {
            roles: roles.clone(),
            clock: fixed_clock(),
        }
        .execute(
            &member(),
            NewRole {
                slug: "editors".into(),
                name: "Editors".into(),
                description: None,
            },
        )
        .await;
        assert!(matches!(create, Err(AdminError::Forbidden(_))));
        let delete = DeleteRole {
            roles,
            default_role: role("application-access").slug,
        }
        .execute(&member(), RoleId::generate())
        .await;
        assert!(matches!(delete, Err(AdminError::Forbidden(_))));
    }

    #[tokio::test]
    async fn creates_a_role_with_trimmed_text() {
        let mut roles = MockRoleRepository::new();
        roles.expect_create().times(1).returning(|_| Ok(()));
        let new = NewRole {
            slug: "editors".into(),
            name: "  Editors ".into(),
            description: Some(" Edit things ".into()),
        };
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
                role.description.as_deref()
            ),
            ("editors", "Editors", Some("Edit things"))
        );
        assert_eq!(role.created_at, now());
    }

    #[tokio::test]
    async fn reports_every_bad_field_and_taken_slugs() {
        let create = CreateRole {
            roles: Arc::new(MockRoleRepository::new()),
            clock: fixed_clock(),
        };
        let bad = NewRole {
            slug: "Bad Slug".into(),
            name: " ".into(),
            description: Some("x".repeat(1001)),
        };
        let Err(AdminError::Invalid(errors)) = create.execute(&superuser(), bad).await else {
            panic!("expected Invalid")
        };
        assert_eq!(
            errors.iter().map(|e| e.field).collect::<Vec<_>>(),
            ["slug", "name", "description"]
        );

        let mut roles = MockRoleRepository::new();
        roles
            .expect_create()
            .returning(|_| Err(CreateRoleError::SlugTaken));
        let taken = CreateRole {
            roles: Arc::new(roles),
            clock: fixed_clock(),
        }
        .execute(
            &superuser(),
            NewRole {
                slug: "editors".into(),
                name: "Editors".into(),
                description: None,
            },
        )
        .await;
        assert!(matches!(taken, Err(AdminError::Conflict(_))));
    }

    #[tokio::test]
    async fn updates_clear_descriptions_and_report_missing_roles() {
        let id = RoleId::generate();
        let mut roles = MockRoleRepository::new();
        roles
            .expect_update()
            .withf(move |role, changes, _| {
                *role == id
                    && changes.name.as_deref() == Some("Writers")
                    && changes.description == Some(None)
            })
            .times(1)
            .returning(|_, _, _| Ok(Some(role("editors"))));
        let update = RoleUpdate {
            name: Some(" Writers ".into()),
            description: Some(None),
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
        .execute(&superuser(), id, RoleUpdate::default())
        .await;
        assert!(matches!(missing, Err(AdminError::NotFound("role"))));

        let invalid = UpdateRole {
            roles: Arc::new(MockRoleRepository::new()),
            clock: fixed_clock(),
        }
        .execute(
            &superuser(),
            RoleId::generate(),
            RoleUpdate {
                name: Some("".into()),
                description: None,
            },
        )
        .await;
        assert!(matches!(invalid, Err(AdminError::Invalid(errors)) if errors[0].field == "name"));
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
            Err(AdminError::Conflict(_))
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
                RoleDeletion::InUse => matches!(
                    &result,
                    Err(AdminError::Conflict(detail)) if detail.contains("still hold")
                ),
                RoleDeletion::NotFound => matches!(result, Err(AdminError::NotFound("role"))),
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
        assert!(matches!(down, Err(AdminError::Port(_))));
    }
}
