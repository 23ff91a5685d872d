//! How the dashboard was started.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::Settings;

/// The dashboard's mode (read-only, demo, login required), for banners and disabled forms.
#[server(endpoint = "settings")]
pub async fn get_settings() -> Result<Settings, AppError> {
    Ok(super::settings())
}
