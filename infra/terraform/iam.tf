# Who may do what (policies/*.json.tpl, rendered and evaluated by tests/infra without
# Terraform; the design and its reasons: docs/architecture.md D20).
#
# - recorder: one policy shared by every recording host, for the identities fleets
#   really have: one IAM role for a whole DaemonSet (IRSA) or one instance profile for
#   many machines. Writes only where recorders write (raw data, raw index segments,
#   writer leases), only conditionally (If-None-Match / If-Match), never a tier, a
#   catalog entry, a deletion mark or the compactor's lease; deletes only leases.
#   Which host a recorder writes is kept by its writer lease, not by IAM.
# - host-writer: for hosts that do have their own identity carrying the principal tag
#   `snapcloud-host` = host id (a role per host, IAM Roles Anywhere with per-host
#   certificates): the recorder's rights narrowed to that host's prefixes.
# - fleet-reader: read and list everything under the store prefix.
# - compactor: read everything; write and delete the tiers, indexes and marks; write
#   (never delete) the catalog entries it rebuilds after each host (architecture D33).

locals {
  policy_vars = {
    bucket_arn = aws_s3_bucket.store.arn
    prefix     = var.key_prefix
  }
  policies = {
    recorder     = var.recorder_role_names
    host-writer  = var.host_writer_role_names
    fleet-reader = var.reader_role_names
    compactor    = var.compactor_role_names
  }
  attachments = merge([
    for name, roles in local.policies : { for role in roles : "${name}/${role}" => { policy = name, role = role } }
  ]...)

  # IRSA: one role per ServiceAccount of infra/k8s, trusted by the cluster's OIDC provider.
  irsa_roles = var.eks_oidc_provider_arn == null ? {} : {
    recorder  = { service_account = "snapcloud-recorder", policy = "recorder" }
    compactor = { service_account = "snapcloud-compactor", policy = "compactor" }
    query     = { service_account = "snapcloud-query", policy = "fleet-reader" }
  }
  oidc_issuer = var.eks_oidc_provider_arn == null ? "" : element(split("oidc-provider/", var.eks_oidc_provider_arn), 1)
  kms_roles = merge(
    { for k, a in local.attachments : k => a.role },
    { for name, r in aws_iam_role.irsa : "irsa/${name}" => r.name },
  )
}

resource "aws_iam_policy" "snapcloud" {
  for_each    = local.policies
  name        = "snapcloud-${each.key}-${var.bucket}"
  description = "snapcloud ${each.key} access to s3://${var.bucket}/${var.key_prefix}"
  policy      = templatefile("${path.module}/policies/${each.key}.json.tpl", local.policy_vars)
  tags        = var.tags
}

resource "aws_iam_role_policy_attachment" "snapcloud" {
  for_each   = local.attachments
  role       = each.value.role
  policy_arn = aws_iam_policy.snapcloud[each.value.policy].arn
}

resource "aws_iam_role" "irsa" {
  for_each    = local.irsa_roles
  name        = "snapcloud-${each.key}-${var.bucket}"
  description = "snapcloud ${each.key} (ServiceAccount ${var.k8s_namespace}/${each.value.service_account})"
  assume_role_policy = templatefile("${path.module}/policies/irsa-trust.json.tpl", {
    oidc_provider_arn = var.eks_oidc_provider_arn
    oidc_issuer       = local.oidc_issuer
    namespace         = var.k8s_namespace
    service_account   = each.value.service_account
  })
  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "irsa" {
  for_each   = local.irsa_roles
  role       = aws_iam_role.irsa[each.key].name
  policy_arn = aws_iam_policy.snapcloud[each.value.policy].arn
}

# With SSE-KMS, every role also needs the key.
data "aws_iam_policy_document" "kms" {
  count = var.kms_key_arn == null ? 0 : 1
  statement {
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_policy" "kms" {
  count  = var.kms_key_arn == null ? 0 : 1
  name   = "snapcloud-kms-${var.bucket}"
  policy = data.aws_iam_policy_document.kms[0].json
  tags   = var.tags
}

resource "aws_iam_role_policy_attachment" "kms" {
  for_each   = var.kms_key_arn == null ? {} : local.kms_roles
  role       = each.value
  policy_arn = aws_iam_policy.kms[0].arn
}
