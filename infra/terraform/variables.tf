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

variable "host_writer_role_names" {
  description = "IAM roles of recording hosts; each must carry the principal tag 'snapcloud-host' = its host id."
  type        = list(string)
  default     = []
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
