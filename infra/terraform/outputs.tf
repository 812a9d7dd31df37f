output "store_url" {
  description = "The store URL to give snapcloud (--store / SNAPCLOUD_STORE)."
  value       = "s3://${aws_s3_bucket.store.id}/${var.key_prefix}"
}

output "policy_arns" {
  description = "The IAM policies, by access role."
  value       = { for k, p in aws_iam_policy.snapcloud : k => p.arn }
}

output "irsa_role_arns" {
  description = "IRSA role ARNs by component, for the ServiceAccounts' eks.amazonaws.com/role-arn annotation."
  value       = { for k, r in aws_iam_role.irsa : k => r.arn }
}
