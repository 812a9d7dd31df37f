{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "ReadFleet",
      "Effect": "Allow",
      "Action": ["s3:GetObject"],
      "Resource": ["${bucket_arn}/${prefix}*"]
    },
    {
      "Sid": "RewriteTiers",
      "Effect": "Allow",
      "Action": ["s3:PutObject", "s3:DeleteObject"],
      "Resource": [
        "${bucket_arn}/${prefix}raw/*",
        "${bucket_arn}/${prefix}compressed/*",
        "${bucket_arn}/${prefix}archive/*",
        "${bucket_arn}/${prefix}index/*",
        "${bucket_arn}/${prefix}marks/deletions/*",
        "${bucket_arn}/${prefix}marks/leases/compactor.json"
      ]
    },
    {
      "Sid": "RefreshCatalog",
      "Effect": "Allow",
      "Action": ["s3:PutObject"],
      "Resource": ["${bucket_arn}/${prefix}catalog/*"]
    },
    {
      "Sid": "ListFleet",
      "Effect": "Allow",
      "Action": ["s3:ListBucket"],
      "Resource": ["${bucket_arn}"],
      "Condition": {"StringLike": {"s3:prefix": ["${prefix}*"]}}
    }
  ]
}
