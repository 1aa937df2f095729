//! `infraaudit policy`: the two IAM documents of the audit role in each audited account. The
//! permission policy lists exactly the actions of the collectors the configuration runs; the
//! trust policy lets the monitoring account assume the role with an ExternalId, whose value is
//! never printed (it is a secret), only named. `--discovery` prints instead the permission
//! policy of the identity that discovers accounts in AWS Organizations.

use std::process::ExitCode;

use serde::Serialize;

use infraaudit::config::{Settings, is_account_id};
use infraaudit::{aws, collector};

use super::{config_error, runtime, write_stdout};

#[derive(clap::Args, Debug)]
pub struct PolicyArgs {
    /// The account allowed to assume the role: the one infraaudit runs in. Default: the account
    /// of the ambient credentials (STS GetCallerIdentity).
    #[arg(long, value_name = "ID")]
    pub principal_account: Option<String>,
    /// `text`: both documents, each after a `# ` heading line; `json`: one object with
    /// `permission_policy` and `trust_policy`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Instead: the permission policy of the identity that discovers accounts (`[organizations]`):
    /// the base identity in the management or delegated-administrator account, or
    /// `organizations.role_arn`. `json`: one object with `permission_policy`.
    #[arg(long, conflicts_with = "principal_account")]
    pub discovery: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// The actions of every collector that runs for some account.
pub fn required_actions(settings: &Settings) -> Vec<&'static str> {
    let names: Vec<&str> = if settings.accounts.is_empty() {
        settings.config.enabled_collectors()
    } else {
        // Discovered accounts run the enabled collectors.
        let discovered = settings
            .organizations
            .as_ref()
            .map(|_| settings.config.enabled_collectors())
            .unwrap_or_default();
        settings
            .accounts
            .iter()
            .flat_map(|a| a.collectors.iter().copied())
            .chain(discovered)
            .collect()
    };
    let mut actions = collector::permissions(names);
    // The API's live listing calls IAM itself.
    if settings.config.api.enabled {
        actions.extend_from_slice(infraaudit::api::PERMISSIONS);
        actions.sort_unstable();
        actions.dedup();
    }
    actions
}

/// The permission policy alone, as `--print-policy` always printed it.
pub fn permission_policy(settings: &Settings) -> String {
    collector::policy_json(&required_actions(settings))
}

pub fn main(settings: &Settings, args: &PolicyArgs) -> ExitCode {
    if args.discovery {
        return print(&discovery_policy(args.format));
    }
    let principal = match &args.principal_account {
        Some(id) if is_account_id(id) => id.clone(),
        Some(id) => {
            return config_error(format_args!(
                "--principal-account: {id:?} is not a 12-digit AWS account id"
            ));
        }
        None => match monitoring_account(settings) {
            Ok(id) => id,
            Err(code) => return code,
        },
    };
    let permission = permission_policy(settings);
    let trust = trust_policy(settings, &principal);
    let text = match args.format {
        Format::Text => format!(
            "# Permission policy of the audit role in each audited account\n{permission}\n\
             # Trust policy of that role: account {principal} may assume it\n{trust}"
        ),
        Format::Json => {
            json_object(&[("permission_policy", &permission), ("trust_policy", &trust)])
        }
    };
    print(&text)
}

/// `--discovery`: the Organizations calls of account discovery, wherever it runs.
fn discovery_policy(format: Format) -> String {
    let permission = collector::policy_json(infraaudit::discovery::PERMISSIONS);
    match format {
        Format::Text => format!(
            "# Permission policy of the identity that discovers accounts (AWS Organizations)\n\
             {permission}"
        ),
        Format::Json => json_object(&[("permission_policy", &permission)]),
    }
}

fn print(text: &str) -> ExitCode {
    if write_stdout(text) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The account of the ambient credentials, or exit code 1 with the reason.
fn monitoring_account(settings: &Settings) -> Result<String, ExitCode> {
    let rt = runtime()?;
    rt.block_on(async {
        let base = aws::base_config(&settings.config.aws).await;
        aws::caller_account(&base).await
    })
    .map_err(|e| {
        eprintln!(
            "infraaudit: cannot tell the monitoring account from the ambient credentials \
             (STS GetCallerIdentity: {e}); pass --principal-account ID"
        );
        ExitCode::FAILURE
    })
}

/// The trust policy, with a placeholder naming the ExternalId, never its value.
fn trust_policy(settings: &Settings, principal: &str) -> String {
    let with_id: Vec<&str> = settings
        .accounts
        .iter()
        .filter(|a| a.external_id.is_some())
        .map(|a| a.id.as_str())
        .collect();
    let placeholder = match with_id.as_slice() {
        [] => "<your ExternalId>".to_owned(),
        [one] => format!("<the ExternalId configured for account {one}>"),
        many => format!(
            "<the ExternalId configured for the account the role is in ({})>",
            many.join(", ")
        ),
    };
    let partition = partition(&settings.config.aws.region);
    let doc = TrustPolicy {
        version: "2012-10-17",
        statement: [TrustStatement {
            effect: "Allow",
            principal: Principal {
                aws: format!("arn:{partition}:iam::{principal}:root"),
            },
            action: "sts:AssumeRole",
            condition: Condition {
                string_equals: ExternalId {
                    external_id: placeholder,
                },
            },
        }],
    };
    // Serializing plain structs of strings cannot fail.
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// The trust policy in AWS's key order (a `serde_json::Value` would sort the keys).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TrustPolicy {
    version: &'static str,
    statement: [TrustStatement; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TrustStatement {
    effect: &'static str,
    principal: Principal,
    action: &'static str,
    condition: Condition,
}

#[derive(Serialize)]
struct Principal {
    #[serde(rename = "AWS")]
    aws: String,
}

#[derive(Serialize)]
struct Condition {
    #[serde(rename = "StringEquals")]
    string_equals: ExternalId,
}

#[derive(Serialize)]
struct ExternalId {
    #[serde(rename = "sts:ExternalId")]
    external_id: String,
}

/// The AWS partition of the home region.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// One JSON object of two pretty-printed documents, each kept in its own key order.
fn json_object(fields: &[(&str, &str)]) -> String {
    let body = fields
        .iter()
        .map(|(key, doc)| format!("  \"{key}\": {}", doc.trim_end().replace('\n', "\n  ")))
        .collect::<Vec<_>>()
        .join(",\n");
    format!("{{\n{body}\n}}\n")
}
