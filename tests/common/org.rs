//! moto's AWS Organizations, created and changed through the SDK as a management account
//! would, for the discovery and sharding tests.

use aws_sdk_organizations::Client;
use aws_sdk_organizations::types::{CreateAccountState, OrganizationFeatureSet, Tag};

/// A configuration with the IAM collector only (hourly: each account costs one credential
/// report) and discovery on; `aws` goes into `[aws]`, `organizations` into `[organizations]`,
/// `rest` after it.
pub fn discovery_config(endpoint: &str, aws: &str, organizations: &str, rest: &str) -> String {
    format!(
        r#"
[server]
listen_address = "{{listen}}"

[aws]
endpoint_url = "{endpoint}"
{aws}

[collectors.s3]
enabled = false

[collectors.ec2]
enabled = false

[collectors.iam_authz]
enabled = false

[collectors.ebs]
enabled = false

[collectors.vpc]
enabled = false

[organizations]
enabled = true
{organizations}
{rest}
"#
    )
}

/// moto's organization, created and changed through the SDK as a management account would.
pub struct Org {
    rt: tokio::runtime::Runtime,
    client: Client,
    pub root: String,
}

impl Org {
    pub fn create(endpoint: &str) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let creds =
            aws_credential_types::Credentials::new("testing", "testing", None, None, "test");
        let conf = aws_sdk_organizations::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(creds)
            .build();
        let client = Client::from_conf(conf);
        let root = rt.block_on(async {
            client
                .create_organization()
                .feature_set(OrganizationFeatureSet::All)
                .send()
                .await
                .unwrap();
            let roots = client.list_roots().send().await.unwrap();
            roots.roots()[0].id().unwrap().to_owned()
        });
        Self { rt, client, root }
    }

    pub fn ou(&self, parent: &str, name: &str) -> String {
        self.rt.block_on(async {
            let out = self
                .client
                .create_organizational_unit()
                .parent_id(parent)
                .name(name)
                .send()
                .await
                .unwrap();
            out.organizational_unit().unwrap().id().unwrap().to_owned()
        })
    }

    /// A new account under `parent` (the root when None).
    pub fn account(&self, name: &str, parent: Option<&str>) -> String {
        self.rt.block_on(async {
            let out = self
                .client
                .create_account()
                .account_name(name)
                .email(format!("{name}@example.com"))
                .send()
                .await
                .unwrap();
            let status = out.create_account_status().unwrap();
            assert_eq!(status.state(), Some(&CreateAccountState::Succeeded));
            let id = status.account_id().unwrap().to_owned();
            if let Some(parent) = parent {
                self.client
                    .move_account()
                    .account_id(&id)
                    .source_parent_id(&self.root)
                    .destination_parent_id(parent)
                    .send()
                    .await
                    .unwrap();
            }
            id
        })
    }

    /// Tags an account (TagResource), as the management account would.
    pub fn tag(&self, id: &str, tags: &[(&str, &str)]) {
        let tags: Vec<Tag> = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap())
            .collect();
        self.rt.block_on(async {
            self.client
                .tag_resource()
                .resource_id(id)
                .set_tags(Some(tags))
                .send()
                .await
                .unwrap();
        });
    }

    pub fn close(&self, id: &str) {
        self.rt.block_on(async {
            self.client
                .close_account()
                .account_id(id)
                .send()
                .await
                .unwrap();
            let out = self
                .client
                .describe_account()
                .account_id(id)
                .send()
                .await
                .unwrap();
            // What moto leaves (AWS passes through PENDING_CLOSURE): not ACTIVE either way.
            assert_eq!(
                out.account().unwrap().state().unwrap().as_str(),
                "SUSPENDED"
            );
        });
    }
}
