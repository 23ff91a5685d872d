//! One module per page.

pub mod cleanup;
pub mod failures;
pub mod login;
pub mod overview;
pub mod pipelines;
pub mod run;
pub mod runs;

pub use cleanup::CleanupPage;
pub use failures::FailuresPage;
pub use login::LoginPage;
pub use overview::OverviewPage;
pub use pipelines::PipelinesPage;
pub use run::RunPage;
pub use runs::RunsPage;
