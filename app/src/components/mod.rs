//! Pieces shared by pages.

pub mod delete_run;
pub mod error_page;
pub mod json_view;
pub mod layout;
pub mod pager;
pub mod run_filters;
pub mod run_nav;
pub mod status;
pub mod theme_toggle;
pub mod title;
pub mod url_notice;
pub mod window_picker;

pub use delete_run::DeleteRunForm;
pub use error_page::{ErrorPage, NotFoundPage};
pub use json_view::JsonView;
pub use layout::Layout;
pub use pager::Pager;
pub use run_filters::RunFilters;
pub use run_nav::RunNav;
pub use status::StatusBadge;
pub use theme_toggle::ThemeToggle;
pub use title::PageTitle;
pub use url_notice::UnknownParams;
pub use window_picker::{ScrollTable, WindowPicker};
