# The snapcloud bucket: private, encrypted, TLS only, with the retention policy's
# lifecycle rules as a safety net behind the compactor.

resource "aws_s3_bucket" "store" {
  bucket = var.bucket
  tags   = var.tags
}

# No versioning: the compactor's deletes must free space, and conditional puts
# (If-None-Match / If-Match) already protect every write that must not be lost.

resource "aws_s3_bucket_ownership_controls" "store" {
  bucket = aws_s3_bucket.store.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "store" {
  bucket                  = aws_s3_bucket.store.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "store" {
  bucket = aws_s3_bucket.store.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = var.kms_key_arn != null
  }
}

# TLS 1.2+ only, and no unconditional write to raw data: every data object is written
# once with If-None-Match (D7), so the bucket refuses whatever would overwrite one, from
# any principal (policies/bucket.json.tpl; docs/architecture.md D20).
resource "aws_s3_bucket_policy" "store" {
  bucket = aws_s3_bucket.store.id
  policy = templatefile("${path.module}/policies/bucket.json.tpl", {
    bucket_arn = aws_s3_bucket.store.arn
    prefix     = var.key_prefix
  })
  depends_on = [aws_s3_bucket_public_access_block.store]
}

# The rules come from lifecycle.json, which is exactly what
# `snapcloud lifecycle show --json` prints for the default policy (a test checks
# it); regenerate it when the policy changes. key_prefix is prepended here.
locals {
  lifecycle = jsondecode(file("${path.module}/lifecycle.json"))
}

resource "aws_s3_bucket_lifecycle_configuration" "store" {
  bucket = aws_s3_bucket.store.id

  dynamic "rule" {
    for_each = local.lifecycle.Rules
    content {
      id     = rule.value.ID
      status = rule.value.Status

      filter {
        prefix = "${var.key_prefix}${rule.value.Filter.Prefix}"
      }

      dynamic "expiration" {
        for_each = can(rule.value.Expiration) ? [rule.value.Expiration] : []
        content {
          days = expiration.value.Days
        }
      }

      dynamic "transition" {
        for_each = try(rule.value.Transitions, [])
        content {
          days          = transition.value.Days
          storage_class = transition.value.StorageClass
        }
      }

      dynamic "abort_incomplete_multipart_upload" {
        for_each = can(rule.value.AbortIncompleteMultipartUpload) ? [rule.value.AbortIncompleteMultipartUpload] : []
        content {
          days_after_initiation = abort_incomplete_multipart_upload.value.DaysAfterInitiation
        }
      }
    }
  }
}
