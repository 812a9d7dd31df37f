{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "WriteStreams",
      "Effect": "Allow",
      "Action": ["s3:PutObject", "s3:GetObject"],
      "Resource": [
        "${bucket_arn}/${prefix}raw/*",
        "${bucket_arn}/${prefix}index/*/raw/*.json",
        "${bucket_arn}/${prefix}marks/leases/*.json"
      ]
    },
    {
      "Sid": "ReleaseLeases",
      "Effect": "Allow",
      "Action": ["s3:DeleteObject"],
      "Resource": ["${bucket_arn}/${prefix}marks/leases/*.json"]
    },
    {
      "Sid": "ListStreams",
      "Effect": "Allow",
      "Action": ["s3:ListBucket"],
      "Resource": ["${bucket_arn}"],
      "Condition": {
        "StringLike": {
          "s3:prefix": ["${prefix}index/*", "${prefix}marks/*"]
        }
      }
    },
    {
      "Sid": "OnlyConditionalWrites",
      "Effect": "Deny",
      "Action": ["s3:PutObject"],
      "Resource": ["${bucket_arn}/${prefix}*"],
      "Condition": {"Null": {"s3:if-none-match": "true", "s3:if-match": "true"}}
    },
    {
      "Sid": "NotTheCompactorLease",
      "Effect": "Deny",
      "Action": ["s3:PutObject", "s3:DeleteObject"],
      "Resource": ["${bucket_arn}/${prefix}marks/leases/compactor.json"]
    }
  ]
}
