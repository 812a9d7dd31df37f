# Three roles of access. The policy documents are JSON templates (policies/*.json.tpl)
# so a test can render and check them without Terraform.
#
# - host writer: one policy for every recording host; each host's role carries the
#   principal tag `snapcloud-host` = its host id, and the policy names only that
#   host's prefixes (raw data, its raw index, its catalog entry, its writer lease).
# - fleet reader: read and list everything under the store prefix.
# - compactor: read everything; write and delete the tiers, indexes and marks.

locals {
  policy_vars = {
    bucket_arn = aws_s3_bucket.store.arn
    prefix     = var.key_prefix
  }
  policies = {
    host-writer  = var.host_writer_role_names
    fleet-reader = var.reader_role_names
    compactor    = var.compactor_role_names
  }
  attachments = merge([
    for name, roles in local.policies : { for role in roles : "${name}/${role}" => { policy = name, role = role } }
  ]...)
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
  for_each   = var.kms_key_arn == null ? {} : local.attachments
  role       = each.value.role
  policy_arn = aws_iam_policy.kms[0].arn
}
