variable "bucket" {
  description = "Name of the snapcloud bucket."
  type        = string
}

variable "key_prefix" {
  description = "Key prefix of the store inside the bucket (s3://bucket/PREFIX), empty or ending with '/'."
  type        = string
  default     = ""
  validation {
    condition     = var.key_prefix == "" || endswith(var.key_prefix, "/")
    error_message = "key_prefix must be empty or end with '/'."
  }
}

variable "kms_key_arn" {
  description = "KMS key for SSE-KMS; null for SSE-S3 (AES256)."
  type        = string
  default     = null
}

variable "recorder_role_names" {
  description = "IAM roles that recording hosts share (an instance profile's role, a DaemonSet's role): get the recorder policy."
  type        = list(string)
  default     = []
}

variable "host_writer_role_names" {
  description = "IAM roles of recording hosts with their own identity; each must carry the principal tag 'snapcloud-host' = its host id."
  type        = list(string)
  default     = []
}

variable "eks_oidc_provider_arn" {
  description = "The EKS cluster's IAM OIDC provider ARN; when set, IRSA roles are made for the ServiceAccounts of infra/k8s."
  type        = string
  default     = null
}

variable "k8s_namespace" {
  description = "Namespace of the snapcloud ServiceAccounts (infra/k8s creates 'snapcloud')."
  type        = string
  default     = "snapcloud"
}

variable "reader_role_names" {
  description = "IAM roles that query the whole fleet (read only)."
  type        = list(string)
  default     = []
}

variable "compactor_role_names" {
  description = "IAM roles that run 'snapcloud compact' (read, write and delete every tier)."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = { app = "snapcloud" }
}
