//! Bundling an EMMAA handler for AWS Lambda and uploading it.
//!
//! - [`bundle`]: the zip Lambda runs on `provided.al2023`: the host as
//!   `bootstrap` (built without a compiler), the guest's component
//!   precompiled for the architecture, and the manifest naming the function;
//! - [`aws`]: the account the AWS flags name, and AWS's failures as one
//!   sentence each;
//! - [`upload`]: UpdateFunctionCode with every check an operator would make
//!   by hand (the code hash, the update status, the runtime);
//! - [`remote`]: the deployed functions, invoked, and their logs read;
//! - [`rollback`]: bundles kept by their hash, and a function's code put
//!   back to the one before;
//! - [`template`] and [`stack`]: the whole pipeline as a CloudFormation
//!   stack, made from the reach table;
//! - [`status`]: where each model's day stands, the expected day against
//!   what AWS holds.

pub mod arch;
pub mod aws;
pub mod bundle;
pub mod cross;
pub mod glibc;
pub mod remote;
pub mod rollback;
pub mod stack;
pub mod status;
pub mod template;
pub mod upload;
