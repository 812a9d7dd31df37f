{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "WriteOwnStream",
      "Effect": "Allow",
      "Action": ["s3:PutObject", "s3:GetObject"],
      "Resource": [
        "${bucket_arn}/${prefix}raw/$${aws:PrincipalTag/snapcloud-host}/*",
        "${bucket_arn}/${prefix}index/$${aws:PrincipalTag/snapcloud-host}/raw/*",
        "${bucket_arn}/${prefix}catalog/$${aws:PrincipalTag/snapcloud-host}.json",
        "${bucket_arn}/${prefix}marks/leases/$${aws:PrincipalTag/snapcloud-host}.json"
      ]
    },
    {
      "Sid": "ReadOwnTiers",
      "Effect": "Allow",
      "Action": ["s3:GetObject"],
      "Resource": ["${bucket_arn}/${prefix}index/$${aws:PrincipalTag/snapcloud-host}/*"]
    },
    {
      "Sid": "ReleaseOwnLease",
      "Effect": "Allow",
      "Action": ["s3:DeleteObject"],
      "Resource": ["${bucket_arn}/${prefix}marks/leases/$${aws:PrincipalTag/snapcloud-host}.json"]
    },
    {
      "Sid": "ListOwnPrefixes",
      "Effect": "Allow",
      "Action": ["s3:ListBucket"],
      "Resource": ["${bucket_arn}"],
      "Condition": {
        "StringLike": {
          "s3:prefix": [
            "${prefix}raw/$${aws:PrincipalTag/snapcloud-host}/*",
            "${prefix}index/$${aws:PrincipalTag/snapcloud-host}/*",
            "${prefix}marks/deletions/$${aws:PrincipalTag/snapcloud-host}/*",
            "${prefix}marks/leases/$${aws:PrincipalTag/snapcloud-host}*"
          ]
        }
      }
    }
  ]
}
