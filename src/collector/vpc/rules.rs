//! The rules of the VPC checks, as pure functions of what AWS returned.
//!
//! The question both admin-port rules answer: can a packet from *some* internet address reach
//! TCP port 22 or 3389? "Anywhere" is `0.0.0.0/0` for IPv4 and `::/0` for IPv6, each family
//! decided on its own.
//!
//! Network ACLs: AWS evaluates a packet against the inbound entries in ascending rule number, and
//! the first entry that matches it decides (allow or deny); the `*` rule (32767) denies whatever
//! none matched. For "from anywhere", only entries whose source is the whole family (prefix
//! length 0) decide: for each port and family, the first such entry (by number) matching TCP to
//! that port (protocol `6` with a port range containing it, or `-1`, all traffic, which has no
//! port range) opens the port when it allows and closes it when it denies. An entry on a narrower
//! CIDR decides neither way: a narrower deny (say `10.0.0.0/8`) before an anywhere allow leaves
//! every other address open, and a narrower allow does not open the port to anywhere. UDP (`17`)
//! and every other protocol do not count; outbound entries are ignored. Prowler's
//! `ec2_networkacl_allow_ingress_*` checks read the entries the same way.
//!
//! Security groups have no deny rules: an inbound permission opens a port to anywhere when its
//! protocol is TCP (`tcp` or `6`) with FromPort..=ToPort containing the port, or `-1` (all
//! traffic, any port), and its IPv4 ranges include `0.0.0.0/0` or its IPv6 ranges `::/0`.

use crate::aws::ec2::{AclEntry, NetworkAcl, Permission, SecurityGroup};

/// SSH and RDP.
pub const ADMIN_PORTS: [i32; 2] = [22, 3389];

/// The name AWS gives each VPC's default security group.
pub const DEFAULT_GROUP_NAME: &str = "default";

/// An admin port open to anywhere of one address family, and what opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    pub port: i32,
    /// `0.0.0.0/0` or `::/0`, as AWS spelt it.
    pub source: String,
    /// The NACL entry (`rule 100`) or the security group permission (`tcp 0-65535`, `all
    /// traffic`).
    pub by: String,
}

impl std::fmt::Display for Opening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} allows TCP {} from {}",
            self.by, self.port, self.source
        )
    }
}

/// Whether a CIDR is a whole address family: prefix length 0 (`0.0.0.0/0`, `::/0`).
pub fn is_anywhere(cidr: &str) -> bool {
    cidr.rsplit_once('/')
        .is_some_and(|(_, len)| len.trim().parse::<u8>() == Ok(0))
}

fn is_all_traffic(protocol: &str) -> bool {
    protocol == "-1" || protocol.eq_ignore_ascii_case("all")
}

fn is_tcp(protocol: &str) -> bool {
    protocol == "6" || protocol.eq_ignore_ascii_case("tcp")
}

/// Whether a NACL entry matches TCP to `port` (from whichever source).
fn entry_matches_tcp(e: &AclEntry, port: i32) -> bool {
    if is_all_traffic(&e.protocol) {
        return true;
    }
    // A TCP entry always has a port range on AWS; without one it would match every port.
    is_tcp(&e.protocol) && e.ports.is_none_or(|(from, to)| from <= port && port <= to)
}

/// The entry's source if it is a whole address family, IPv4 first.
fn entry_anywhere(e: &AclEntry, ipv6: bool) -> Option<&str> {
    let cidr = if ipv6 {
        e.ipv6_cidr_block.as_deref()
    } else {
        e.cidr_block.as_deref()
    };
    cidr.filter(|c| is_anywhere(c))
}

/// The admin ports the NACL opens to anywhere, by port, then IPv4 before IPv6.
pub fn nacl_admin_openings(acl: &NetworkAcl) -> Vec<Opening> {
    let mut inbound: Vec<&AclEntry> = acl.entries.iter().filter(|e| !e.egress).collect();
    inbound.sort_by_key(|e| e.rule_number);
    let mut out = Vec::new();
    for port in ADMIN_PORTS {
        for ipv6 in [false, true] {
            let first = inbound.iter().find_map(|e| {
                let source = entry_anywhere(e, ipv6)?;
                entry_matches_tcp(e, port).then_some((e, source))
            });
            if let Some((e, source)) = first
                && e.allow
            {
                out.push(Opening {
                    port,
                    source: source.to_owned(),
                    by: format!("rule {}", e.rule_number),
                });
            }
        }
    }
    out
}

/// Whether the permission's protocol and ports take in TCP to `port`.
fn permission_reaches(p: &Permission, port: i32) -> bool {
    if is_all_traffic(&p.protocol) {
        return true;
    }
    if !is_tcp(&p.protocol) {
        return false;
    }
    match (p.from_port, p.to_port) {
        (Some(from), Some(to)) => from <= port && port <= to,
        // TCP always has both on AWS; without them, every port.
        _ => true,
    }
}

fn describe_permission(p: &Permission) -> String {
    if is_all_traffic(&p.protocol) {
        return "all traffic".to_owned();
    }
    match (p.from_port, p.to_port) {
        (Some(from), Some(to)) if from == to => format!("tcp {from}"),
        (Some(from), Some(to)) => format!("tcp {from}-{to}"),
        _ => "tcp (all ports)".to_owned(),
    }
}

/// The admin ports the security group's inbound permissions open to anywhere, by port, then
/// IPv4 before IPv6.
pub fn security_group_admin_openings(g: &SecurityGroup) -> Vec<Opening> {
    let mut out = Vec::new();
    for port in ADMIN_PORTS {
        for ipv6 in [false, true] {
            let first = g.ingress.iter().find_map(|p| {
                if !permission_reaches(p, port) {
                    return None;
                }
                let ranges = if ipv6 { &p.ipv6_ranges } else { &p.ipv4_ranges };
                let source = ranges.iter().find(|c| is_anywhere(c))?;
                Some((p, source))
            });
            if let Some((p, source)) = first {
                out.push(Opening {
                    port,
                    source: source.clone(),
                    by: describe_permission(p),
                });
            }
        }
    }
    out
}

/// Rules as AWS counts them (DescribeSecurityGroupRules): one per IPv4 range, IPv6 range, prefix
/// list and referenced group of each permission.
pub fn rule_count(permissions: &[Permission]) -> usize {
    permissions
        .iter()
        .map(|p| p.ipv4_ranges.len() + p.ipv6_ranges.len() + p.prefix_lists + p.group_pairs)
        .sum()
}

pub fn is_default_group(g: &SecurityGroup) -> bool {
    g.group_name == DEFAULT_GROUP_NAME
}

/// The rule of `vpc_default_security_group_open`: a default security group with any inbound or
/// outbound rule; None for other groups.
pub fn default_group_open(g: &SecurityGroup) -> Option<bool> {
    is_default_group(g).then(|| rule_count(&g.ingress) + rule_count(&g.egress) > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(number, "allow"|"deny", protocol, ports, cidr)`; an IPv6 source when `cidr` has a `:`.
    type Entry = (
        i32,
        &'static str,
        &'static str,
        Option<(i32, i32)>,
        &'static str,
    );

    fn entry(egress: bool, (rule_number, action, protocol, ports, cidr): Entry) -> AclEntry {
        let v6 = cidr.contains(':');
        AclEntry {
            rule_number,
            egress,
            allow: action == "allow",
            protocol: protocol.into(),
            ports,
            cidr_block: (!v6).then(|| cidr.into()),
            ipv6_cidr_block: v6.then(|| cidr.into()),
        }
    }

    fn acl(inbound: &[Entry], outbound: &[Entry]) -> NetworkAcl {
        let mut entries: Vec<AclEntry> = inbound.iter().map(|e| entry(false, *e)).collect();
        entries.extend(outbound.iter().map(|e| entry(true, *e)));
        // The `*` rules AWS adds to every ACL.
        for egress in [false, true] {
            entries.push(entry(egress, (32767, "deny", "-1", None, "0.0.0.0/0")));
            entries.push(entry(egress, (32768, "deny", "-1", None, "::/0")));
        }
        NetworkAcl {
            network_acl_id: "acl-1".into(),
            vpc_id: "vpc-1".into(),
            is_default: false,
            entries,
        }
    }

    /// (port, source) of each opening.
    fn open(openings: &[Opening]) -> Vec<(i32, &str)> {
        openings
            .iter()
            .map(|o| (o.port, o.source.as_str()))
            .collect()
    }

    /// (name, inbound, outbound, the (port, source) pairs open to anywhere)
    type Case<T> = (
        &'static str,
        &'static [T],
        &'static [T],
        &'static [(i32, &'static str)],
    );

    const ALL: Option<(i32, i32)> = None;
    const V4: &str = "0.0.0.0/0";
    const V6: &str = "::/0";

    #[test]
    fn nacl_rules() {
        #[rustfmt::skip]
        let cases: &[Case<Entry>] = &[
            ("the default ACL: allow all, both families",
             &[(100, "allow", "-1", ALL, V4), (101, "allow", "-1", ALL, V6)], &[],
             &[(22, V4), (22, V6), (3389, V4), (3389, V6)]),
            ("a deny with a lower number hides a later allow",
             &[(50, "deny", "6", Some((22, 22)), V4), (100, "allow", "6", Some((22, 22)), V4)], &[],
             &[]),
            ("a deny on port 22 only: 3389 stays open",
             &[(90, "deny", "6", Some((22, 22)), V4), (100, "allow", "-1", ALL, V4)], &[],
             &[(3389, V4)]),
            ("rule numbers decide, not the order of the list",
             &[(200, "deny", "-1", ALL, V4), (100, "allow", "6", Some((3389, 3389)), V4)], &[],
             &[(3389, V4)]),
            ("protocol -1 to ::/0 opens both ports over IPv6 only",
             &[(100, "allow", "-1", ALL, V6)], &[],
             &[(22, V6), (3389, V6)]),
            ("port range 0-65535",
             &[(100, "allow", "6", Some((0, 65535)), V4)], &[],
             &[(22, V4), (3389, V4)]),
            ("a range that leaves the ports out",
             &[(100, "allow", "6", Some((3390, 65535)), V4), (110, "allow", "6", Some((23, 3388)), V4)], &[],
             &[]),
            ("a narrower deny before an anywhere allow leaves the port open",
             &[(50, "deny", "6", Some((22, 22)), "10.0.0.0/8"), (100, "allow", "6", Some((22, 22)), V4)], &[],
             &[(22, V4)]),
            ("a narrower allow does not open to anywhere",
             &[(100, "allow", "-1", ALL, "203.0.113.0/24"), (110, "allow", "6", Some((22, 22)), "2001:db8::/32")], &[],
             &[]),
            ("UDP only",
             &[(100, "allow", "17", Some((0, 65535)), V4), (101, "allow", "17", Some((0, 65535)), V6)], &[],
             &[]),
            ("outbound entries are ignored",
             &[], &[(100, "allow", "-1", ALL, V4), (101, "allow", "6", Some((22, 22)), V6)],
             &[]),
            ("the families are decided apart: IPv4 denied, IPv6 allowed",
             &[(50, "deny", "-1", ALL, V4), (100, "allow", "-1", ALL, V4), (110, "allow", "6", Some((3389, 3389)), V6)], &[],
             &[(3389, V6)]),
            ("only the * rules: closed",
             &[], &[],
             &[]),
            ("an allow after the IPv6 deny of 3389 only",
             &[(10, "deny", "6", Some((3389, 3389)), V6), (20, "allow", "6", Some((0, 65535)), V6)], &[],
             &[(22, V6)]),
        ];
        for (name, inbound, outbound, want) in cases {
            let got = nacl_admin_openings(&acl(inbound, outbound));
            assert_eq!(open(&got), *want, "{name}");
        }
    }

    #[test]
    fn a_nacl_opening_names_its_rule() {
        let got = nacl_admin_openings(&acl(&[(120, "allow", "6", Some((22, 22)), V4)], &[]));
        let text: Vec<String> = got.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["rule 120 allows TCP 22 from 0.0.0.0/0"]);
    }

    /// `(protocol, from, to, ipv4 ranges, ipv6 ranges)`
    type Perm = (
        &'static str,
        Option<i32>,
        Option<i32>,
        &'static [&'static str],
        &'static [&'static str],
    );

    fn permission((protocol, from, to, v4, v6): Perm) -> Permission {
        Permission {
            protocol: protocol.into(),
            from_port: from,
            to_port: to,
            ipv4_ranges: v4.iter().map(|s| (*s).to_owned()).collect(),
            ipv6_ranges: v6.iter().map(|s| (*s).to_owned()).collect(),
            prefix_lists: 0,
            group_pairs: 0,
        }
    }

    fn group(name: &str, ingress: &[Perm], egress: &[Perm]) -> SecurityGroup {
        SecurityGroup {
            group_id: "sg-1".into(),
            group_name: name.into(),
            vpc_id: "vpc-1".into(),
            ingress: ingress.iter().map(|p| permission(*p)).collect(),
            egress: egress.iter().map(|p| permission(*p)).collect(),
        }
    }

    #[test]
    fn security_group_rules() {
        #[rustfmt::skip]
        let cases: &[Case<Perm>] = &[
            ("ssh to anywhere", &[("tcp", Some(22), Some(22), &[V4], &[])], &[], &[(22, V4)]),
            ("port range 0-65535", &[("tcp", Some(0), Some(65535), &[V4], &[])], &[],
             &[(22, V4), (3389, V4)]),
            ("protocol -1 to ::/0", &[("-1", None, None, &[], &[V6])], &[], &[(22, V6), (3389, V6)]),
            ("the protocol as a number", &[("6", Some(3389), Some(3389), &["10.0.0.0/8", V4], &[])], &[],
             &[(3389, V4)]),
            ("a narrower source", &[("tcp", Some(22), Some(22), &["10.0.0.0/8"], &["2001:db8::/32"])], &[],
             &[]),
            ("UDP only", &[("udp", Some(0), Some(65535), &[V4], &[V6])], &[], &[]),
            ("other ports", &[("tcp", Some(80), Some(443), &[V4], &[V6]), ("tcp", Some(23), Some(3388), &[V4], &[])], &[],
             &[]),
            ("outbound permissions are ignored", &[], &[("-1", None, None, &[V4], &[V6])], &[]),
            ("both families, from two permissions",
             &[("tcp", Some(22), Some(22), &[V4], &[]), ("tcp", Some(0), Some(65535), &[], &[V6])], &[],
             &[(22, V4), (22, V6), (3389, V6)]),
        ];
        for (name, ingress, egress, want) in cases {
            let got = security_group_admin_openings(&group("web", ingress, egress));
            assert_eq!(open(&got), *want, "{name}");
        }
    }

    #[test]
    fn a_security_group_opening_names_its_permission() {
        let g = group("web", &[("-1", None, None, &[], &[V6])], &[]);
        let text: Vec<String> = security_group_admin_openings(&g)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            text,
            [
                "all traffic allows TCP 22 from ::/0",
                "all traffic allows TCP 3389 from ::/0"
            ]
        );
    }

    #[test]
    fn default_group_rules_count_as_aws_counts_them() {
        // As AWS creates it: inbound from itself, outbound to anywhere in both families.
        let mut created = group("default", &[], &[("-1", None, None, &[V4], &[V6])]);
        created.ingress.push(Permission {
            protocol: "-1".into(),
            group_pairs: 1,
            ..Permission::default()
        });
        assert_eq!(rule_count(&created.ingress), 1);
        assert_eq!(rule_count(&created.egress), 2);
        assert_eq!(default_group_open(&created), Some(true));

        let mut several = permission((
            "tcp",
            Some(443),
            Some(443),
            &["10.0.0.0/8", "192.168.0.0/16"],
            &[],
        ));
        several.prefix_lists = 1;
        assert_eq!(rule_count(&[several]), 3);

        let emptied = group("default", &[], &[]);
        assert_eq!(default_group_open(&emptied), Some(false));
        // Only the group named "default" is any VPC's default group.
        let other = group("web", &[("-1", None, None, &[V4], &[])], &[]);
        assert_eq!(default_group_open(&other), None);
    }

    #[test]
    fn anywhere_is_prefix_length_zero() {
        for (cidr, want) in [
            ("0.0.0.0/0", true),
            ("::/0", true),
            ("0.0.0.0/1", false),
            ("10.0.0.0/8", false),
            ("::/128", false),
            ("0.0.0.0", false),
            ("", false),
        ] {
            assert_eq!(is_anywhere(cidr), want, "{cidr}");
        }
    }
}
