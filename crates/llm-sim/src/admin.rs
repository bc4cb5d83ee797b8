//! The admin API: read, replace and reset the live settings.

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, header},
};

use crate::{config::SimConfig, error::ApiError, state::SimState};

fn authorize(state: &SimState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.admin_token().is_none() {
        return Ok(());
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token) if state.token_matches(token) => Ok(()),
        _ => {
            tracing::warn!("admin API call rejected: missing or wrong bearer token");
            Err(ApiError::unauthorized())
        }
    }
}

/// `GET /admin/config`
pub(crate) async fn get_config(
    State(state): State<SimState>,
    headers: HeaderMap,
) -> Result<Json<SimConfig>, ApiError> {
    authorize(&state, &headers)?;
    Ok(Json(state.config()))
}

/// `PUT /admin/config`: the body replaces the settings as a whole (sections
/// left out take their defaults).
pub(crate) async fn put_config(
    State(state): State<SimState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SimConfig>, ApiError> {
    authorize(&state, &headers)?;
    let config: SimConfig = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid llm-sim config: {e}")))?;
    state
        .set_config(config.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid llm-sim config: {e}")))?;
    tracing::info!(config = ?config, "config replaced through the admin API");
    Ok(Json(config))
}

/// `POST /admin/reset`: back to the startup settings.
pub(crate) async fn reset(
    State(state): State<SimState>,
    headers: HeaderMap,
) -> Result<Json<SimConfig>, ApiError> {
    authorize(&state, &headers)?;
    let config = state.reset();
    tracing::info!(config = ?config, "config reset to the startup settings");
    Ok(Json(config))
}
