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
      "Sid": "ListFleet",
      "Effect": "Allow",
      "Action": ["s3:ListBucket"],
      "Resource": ["${bucket_arn}"],
      "Condition": {"StringLike": {"s3:prefix": ["${prefix}*"]}}
    }
  ]
}
