//! # The port contract suite
//!
//! One set of tests per port of `authd_application::ports`, written once as functions that
//! take the adapter, and run against every adapter of that port: the in-memory ones, Postgres
//! and Redis (each adapter crate's `tests/contract.rs`, so that the suite counts as that
//! crate's own tests, which is what `make mutants` runs on its mutants). An adapter that passes the suite behaves as the
//! port's documentation says, so the memory and Postgres stores, or the memory and Redis caches,
//! can stand in for one another. (After apache/arrow-rs-object-store's `src/integration.rs`.)
//!
//! - [`users`], [`roles`], [`sessions`], [`links`] and [`outbox`] take a [`Store`]: the storage
//!   ports of one store, since their contracts meet (a password change revokes sessions and
//!   queues an email, a role rename shows in the users' profiles, a reset sets a password).
//! - [`cache`] takes an `AuthCache` built with the TTLs in [`cache::TTLS`].
//! - [`throttle`] takes a `LoginThrottle` built with [`throttle::backoff`] and
//!   [`throttle::ip_cap`].
//!
//! A test binary runs a whole suite with [`store_suite!`], [`cache_suite!`] or
//! [`throttle_suite!`], handing it an async function that builds a fresh adapter (a database, a
//! key prefix of its own), runs the one test it is given, and tidies up.
//!
//! A new contract is a `pub async fn` in its module and its name in that module's macro list
//! below (a function missing from the list runs nowhere).
//!
//! What two adapters may legitimately do differently (an outage, which only a networked
//! adapter has; key names and TTLs as Redis stores them; SQL shapes and row locks) is not in
//! the suite but in each adapter's own tests.
//!
//! Depends on the application ports and the domain only; each adapter crate has this crate as
//! a dev-dependency.

// Test support: a failed expectation is a panic, as in any test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod cache;
pub mod links;
pub mod outbox;
pub mod roles;
pub mod sessions;
pub mod throttle;
pub mod users;

mod fixtures;

use authd_application::ports::{
    LinkTokenRepository, Outbox, RoleRepository, SessionRepository, UserRepository,
};

/// The storage ports of one store, as the store suites take them.
#[derive(Clone, Copy)]
pub struct Store<'a> {
    /// Its users.
    pub users: &'a dyn UserRepository,
    /// Its roles.
    pub roles: &'a dyn RoleRepository,
    /// Its sessions.
    pub sessions: &'a dyn SessionRepository,
    /// Its link tokens.
    pub links: &'a dyn LinkTokenRepository,
    /// Its outbox.
    pub outbox: &'a dyn Outbox,
}

/// Defines one `#[tokio::test]` per store contract (users, roles, sessions, links, outbox), each calling
/// `$with(contract)`, where `$with` is an `async fn(impl AsyncFnOnce(Store<'_>))` that builds a
/// fresh store, runs the contract on it and tidies up.
#[macro_export]
macro_rules! store_suite {
    ($with:path) => {
        $crate::__tests!(
            $with,
            users,
            [
                users_create_and_find,
                users_email_taken_in_any_case_stores_nothing,
                users_are_found_by_their_nfc_email,
                users_list_by_creation_time_then_id_a_page_at_a_time,
                users_list_of_an_empty_store,
                users_search_matches_email_or_name_in_any_case_and_literally,
                users_role_filter_matches_the_slug,
                users_filters_combine,
                users_lookups_show_the_role_as_it_is_now,
                users_update_sets_only_the_given_fields_and_the_time,
                users_update_keeps_the_primary_admin_mark,
                users_update_to_a_taken_email_changes_nothing,
                users_update_of_an_unknown_user_is_none,
                users_an_unknown_role_is_refused_and_nothing_changes,
                users_update_revoking_sessions_returns_exactly_the_live_ones,
                users_update_without_revoking_leaves_the_sessions_live,
                users_delete_returns_the_live_sessions_and_frees_the_email,
                users_delete_without_live_sessions_or_of_nobody,
                users_primary_admin_is_created_once_and_never_overwritten,
                users_primary_admin_with_a_taken_email_is_refused,
                users_primary_admin_mark_is_read_back_by_every_lookup,
                users_create_never_makes_a_second_primary_admin,
                users_of_concurrent_primary_admin_creations_exactly_one_wins,
                users_replace_password_revokes_exactly_the_live_sessions,
                users_replace_password_of_nobody_revokes_nothing,
                users_replace_password_is_a_compare_and_set_on_the_version,
                users_of_concurrent_password_changes_at_one_version_exactly_one_wins,
                users_a_password_change_never_overwrites_a_completed_reset,
                users_rehash_is_a_compare_and_set_on_the_old_hash,
                users_every_credentials_change_bumps_the_version,
            ]
        );
        $crate::__tests!(
            $with,
            roles,
            [
                roles_ensure_is_idempotent,
                roles_concurrent_ensures_create_one_role,
                roles_are_listed_by_creation_time_then_id,
                roles_create_find_and_slug_taken,
                roles_update_sets_only_the_given_fields_and_the_time,
                roles_delete_once_and_never_while_held,
            ]
        );
        $crate::__tests!(
            $with,
            sessions,
            [
                sessions_create_and_find_with_the_rotation_state,
                sessions_create_refuses_a_stale_version_or_an_inactive_user,
                sessions_no_login_racing_a_credentials_change_stays_live,
                sessions_list_live_newest_first,
                sessions_revoke_returns_the_session_only_while_live,
                sessions_revoke_all_revokes_the_live_ones_and_bumps_the_version,
                sessions_rotate_is_a_compare_and_set,
                sessions_a_rotation_stops_at_the_sessions_end_in_whole_seconds,
                sessions_a_rotation_needs_the_sessions_own_active_user,
                sessions_a_rotation_returns_its_user_as_stored,
                sessions_a_rotation_keeps_the_profile_it_read,
                sessions_of_concurrent_rotations_exactly_one_wins,
                sessions_revoked_or_expired_cannot_rotate,
                sessions_purge_deletes_expired_and_long_revoked_only,
                sessions_purge_deletes_at_most_a_batch,
                sessions_concurrent_purges_delete_each_session_once,
                sessions_sealed_pairs_are_cleared_past_the_window_a_batch_at_a_time,
                sessions_concurrent_clearings_clear_each_pair_once,
                sessions_every_revocation_clears_the_sealed_pair,
            ]
        );
        $crate::__tests!(
            $with,
            links,
            [
                links_signup_queues_one_verification_email_with_the_sealed_token,
                links_signup_with_a_taken_email_stores_and_queues_nothing,
                links_signup_with_a_stored_digest_stores_and_queues_nothing,
                links_deleting_a_user_keeps_the_links_of_others,
                links_reset_request_without_an_active_account_changes_nothing,
                links_reset_request_queues_the_email_to_the_address_as_stored,
                links_reset_requests_are_limited_per_account,
                links_a_new_reset_request_spends_the_older_token,
                links_of_concurrent_reset_requests_the_limit_lets_one_through,
                links_holder_respects_purpose_expiry_spending_and_activity,
                links_reset_sets_the_password_and_ends_every_session,
                links_reset_of_an_expired_token_or_an_inactive_user_changes_nothing,
                links_of_concurrent_resets_with_one_token_exactly_one_wins,
                links_verify_email_marks_the_user_verified_once,
                links_verify_email_of_an_expired_token_or_an_inactive_user_changes_nothing,
                links_verification_requests_say_why_not,
                links_verification_requests_are_limited_counting_the_signup,
                links_password_changes_spend_reset_tokens_and_queue_the_notice,
                links_changes_without_a_new_password_queue_nothing,
                links_an_email_change_spends_every_link_and_unverifies,
                links_an_email_change_keeps_the_mark_it_sets,
                links_an_update_to_the_same_address_spends_nothing,
                links_a_deactivation_spends_every_link_for_good,
                links_purge_deletes_only_tokens_expired_and_made_before_the_cut,
                links_purge_deletes_at_most_a_batch,
            ]
        );
        $crate::__tests!(
            $with,
            outbox,
            [
                outbox_an_email_is_due_when_queued_and_claimed_with_its_details,
                outbox_claim_leases_the_email_and_counts_the_attempt,
                outbox_claims_the_oldest_due_first_a_batch_at_a_time,
                outbox_claims_reset_and_notice_emails_before_verification_ones,
                outbox_concurrent_claims_get_disjoint_emails,
                outbox_a_sent_email_is_done,
                outbox_a_failed_email_is_due_again_at_its_retry_time,
                outbox_a_dead_email_is_given_up,
                outbox_stats_count_what_waits_and_its_oldest,
                outbox_purge_deletes_only_emails_sent_or_dead_before_the_cut,
                outbox_purge_deletes_at_most_a_batch,
            ]
        );
    };
}

/// Defines one `#[tokio::test]` per auth cache contract, each calling `$with(contract)`, where
/// `$with` is an `async fn(impl AsyncFnOnce(&dyn AuthCache))` that builds a fresh cache with
/// [`cache::TTLS`], runs the contract on it and tidies up.
#[macro_export]
macro_rules! cache_suite {
    ($with:path) => {
        $crate::__tests!(
            $with,
            cache,
            [
                cache_lookup_of_nothing_is_a_miss,
                cache_lookup_returns_the_mark_and_the_user,
                cache_mark_live_never_overrides_a_mark,
                cache_live_marks_last_at_most_the_cap,
                cache_forget_sessions_drops_the_marks,
                cache_mark_revoked_overrides_and_lasts_its_ttl,
                cache_put_user_never_overrides_an_entry,
                cache_forget_user_leaves_a_tombstone_for_its_ttl,
                cache_profiles_expire,
            ]
        );
    };
}

/// Defines one `#[tokio::test]` per login throttle contract, each calling `$with(contract)`,
/// where `$with` is an `async fn(impl AsyncFnOnce(&dyn LoginThrottle))` that builds a fresh
/// throttle with [`throttle::backoff`] and [`throttle::ip_cap`], runs the contract on it and
/// tidies up.
#[macro_export]
macro_rules! throttle_suite {
    ($with:path) => {
        $crate::__tests!(
            $with,
            throttle,
            [
                throttle_admits_the_failures_allowed_then_locks,
                throttle_each_attempt_past_a_lock_doubles_it,
                throttle_success_resets_the_account,
                throttle_withdraw_gives_the_count_back,
                throttle_devices_count_apart_from_accounts,
                throttle_caps_attempts_per_network,
                throttle_success_and_withdraw_give_the_network_its_attempt_back,
                throttle_a_refused_attempt_counts_nothing,
                throttle_of_thirty_concurrent_attempts_exactly_the_failures_left_pass,
                throttle_of_concurrent_attempts_from_one_network_exactly_the_cap_passes,
                throttle_admit_network_counts_against_the_network_cap,
                throttle_of_concurrent_network_admissions_exactly_the_cap_passes,
            ]
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __tests {
    ($with:path, $module:ident, [$($name:ident),* $(,)?]) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $with($crate::$module::$name).await;
            }
        )*
    };
}
