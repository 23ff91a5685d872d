//! Pieces shared by pages.

pub mod error_page;
pub mod layout;
pub mod status;
pub mod theme_toggle;

pub use error_page::{ErrorPage, NotFoundPage};
pub use layout::Layout;
pub use status::StatusBadge;
pub use theme_toggle::ThemeToggle;
