//! The tables, written by hand to match `migrations/` (no `diesel print-schema` in the build).

diesel::table! {
    roles (id) {
        id -> Uuid,
        slug -> Text,
        name -> Text,
        description -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        email_normalized -> Text,
        name -> Nullable<Text>,
        password_hash -> Text,
        is_active -> Bool,
        is_superuser -> Bool,
        is_verified -> Bool,
        is_primary_admin -> Bool,
        role_id -> Uuid,
        credentials_version -> BigInt,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        created_at -> Timestamptz,
        last_used_at -> Timestamptz,
        expires_at -> Timestamptz,
        user_agent -> Nullable<Text>,
        ip -> Nullable<Text>,
        revoked_at -> Nullable<Timestamptz>,
        current_refresh_jti -> Uuid,
        previous_refresh_jti -> Nullable<Uuid>,
        rotated_at -> Nullable<Timestamptz>,
        sealed_successor -> Nullable<Text>,
        signed_for -> Nullable<Uuid>,
        signed_email -> Nullable<Text>,
        signed_role -> Nullable<Text>,
        signed_superuser -> Nullable<Bool>,
    }
}

diesel::table! {
    link_tokens (digest) {
        digest -> Bytea,
        user_id -> Uuid,
        purpose -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        spent_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    outbox (id) {
        id -> Uuid,
        kind -> Text,
        recipient -> Text,
        sealed_token -> Nullable<Text>,
        created_at -> Timestamptz,
        next_attempt_at -> Timestamptz,
        attempts -> Integer,
        sent_at -> Nullable<Timestamptz>,
        dead_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
    }
}

diesel::joinable!(users -> roles (role_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(link_tokens -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(roles, users, sessions, link_tokens, outbox);
